//! Files and directories only their owners' side may open: on Windows the private DACL of
//! [`crate::domain::private_acl`] (SYSTEM and Administrators, protected from inheritance), on
//! Unix mode 0700 for a directory and 0600 for a file.

use std::path::Path;

use crate::domain::private_acl::Object;

/// Makes `path` private (see the module documentation), replacing whatever it allowed before.
pub fn restrict(path: &Path, object: Object) -> std::io::Result<()> {
    #[cfg(windows)]
    {
        apply_sddl(path, &crate::domain::private_acl::sddl(object))
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match object {
            Object::Directory => 0o700,
            Object::File => 0o600,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
}

/// Sets the DACL of `path` to the one `sddl` describes, marked protected so that the parent's
/// inheritable entries no longer apply; for a directory, `SetNamedSecurityInfoW` passes the
/// new inheritable entries on to what is already inside.
#[cfg(windows)]
fn apply_sddl(path: &Path, sddl: &str) -> std::io::Result<()> {
    use std::iter::once;
    use std::os::windows::ffi::OsStrExt;
    use std::ptr::{null, null_mut};

    use windows_sys::Win32::Foundation::{ERROR_SUCCESS, LocalFree};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1, SE_FILE_OBJECT,
        SetNamedSecurityInfoW,
    };
    use windows_sys::Win32::Security::{
        ACL, DACL_SECURITY_INFORMATION, GetSecurityDescriptorDacl,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    let wide_sddl: Vec<u16> = sddl.encode_utf16().chain(once(0)).collect();
    let wide_path: Vec<u16> = path.as_os_str().encode_wide().chain(once(0)).collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: both strings are NUL-terminated and outlive the calls; the descriptor that
    // ConvertStringSecurityDescriptorToSecurityDescriptorW allocates is read only while it
    // lives and freed once, with LocalFree, as its documentation requires.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            wide_sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let mut present = 0;
        let mut defaulted = 0;
        let mut dacl: *mut ACL = null_mut();
        let result =
            if GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) == 0
                || present == 0
            {
                Err(std::io::Error::last_os_error())
            } else {
                match SetNamedSecurityInfoW(
                    wide_path.as_ptr(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                    null_mut(),
                    null_mut(),
                    dacl,
                    null(),
                ) {
                    ERROR_SUCCESS => Ok(()),
                    code => Err(std::io::Error::from_raw_os_error(code as i32)),
                }
            };
        LocalFree(descriptor as _);
        result
    }
}
