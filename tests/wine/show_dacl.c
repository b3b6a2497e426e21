/* Prints the DACL of each path given, in SDDL, as Windows reports it through
 * GetNamedSecurityInfoW: an external check of the access list restic-fleet.exe sets on its
 * config file and state directory (Wine's icacls and cacls are stubs that print nothing).
 * Built with the mingw-w64 that links the exe; used by tests/wine.sh only. */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>

int wmain(int argc, wchar_t **argv)
{
    int status = 0;
    for (int i = 1; i < argc; i++) {
        PSECURITY_DESCRIPTOR sd = NULL;
        PACL dacl = NULL;
        LPWSTR text = NULL;
        DWORD err = GetNamedSecurityInfoW(argv[i], SE_FILE_OBJECT, DACL_SECURITY_INFORMATION,
                                          NULL, NULL, &dacl, NULL, &sd);
        if (err != ERROR_SUCCESS) {
            fwprintf(stderr, L"%ls: GetNamedSecurityInfoW failed with error %lu\n", argv[i], err);
            status = 1;
            continue;
        }
        if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(
                sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &text, NULL)) {
            fwprintf(stderr, L"%ls: cannot convert the descriptor (error %lu)\n", argv[i],
                     GetLastError());
            status = 1;
        } else {
            wprintf(L"%ls\n", text);
            LocalFree(text);
        }
        LocalFree(sd);
    }
    return status;
}
