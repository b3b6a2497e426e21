//! What restic's environment holds: only the backend variables of the allow-list from the
//! database, refused where written and again before restic starts (a recording proxy shows
//! that restic never left for one the database chose), and nothing of restic-fleet's own (a
//! wrapper first on PATH records restic's whole environment).

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;

/// The variables the database must not hand restic: each changes what restic trusts, where it
/// connects, which files it reads, or what it runs.
const REFUSED: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "RCLONE_CONFIG",
    "RCLONE_PASSWORD_COMMAND",
    "RCLONE_SFTP_SSH",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "RESTIC_CACERT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCONV_PATH",
    "HOSTALIASES",
    "SSH_AUTH_SOCK",
    "TMPDIR",
    "GODEBUG",
];

#[tokio::test]
async fn settings_set_accepts_only_backend_credentials() {
    let env = Env::enrolled().await;
    for name in REFUSED {
        for scope in [&[][..], &["--device", "test-device"][..]] {
            let mut args = vec!["settings", "set", "repository_environment", "-"];
            args.extend_from_slice(scope);
            let out = with_stdin(&env, &args, &format!("B2_ACCOUNT_ID=1\n{name}=/tmp/x\n"));
            assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!(
                    "line 2 of repository_environment: {name} is not one of"
                )) && err.contains("B2_ACCOUNT_ID, B2_ACCOUNT_KEY")
                    && err.contains("RESTIC_REST_PASSWORD"),
                "{name}: {err}"
            );
        }
    }
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM settings WHERE key = 'repository_environment' AND value <> ''",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(rows, 0, "nothing refused was written");
    let out = with_stdin(
        &env,
        &["settings", "set", "repository_environment", "-"],
        "AWS_ACCESS_KEY_ID=AKIA1\nAWS_SECRET_ACCESS_KEY=s3cr3t\nAWS_DEFAULT_REGION=eu-west-1\n",
    );
    assert_ok(&out);
}

/// A TCP listener on 127.0.0.1 that counts the connections it accepts (and closes them).
fn recording_proxy() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut conn = conn;
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let _ = conn.read(&mut [0u8; 512]);
        }
    });
    (port, seen)
}

#[tokio::test]
async fn a_proxy_written_around_the_cli_is_refused_before_restic_starts() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("home", &[&src]).await;
    let (port, seen) = recording_proxy();
    // A host name, not 127.0.0.1: Go never sends loopback addresses through a proxy.
    let repository = "rest:http://backup.example.invalid:8000/fleet";
    env.set_setting("repository_url", repository).await;
    let proxy = format!("http://127.0.0.1:{port}");
    env.set_setting(
        "repository_environment",
        &format!("HTTP_PROXY={proxy}\nHTTPS_PROXY={proxy}\n"),
    )
    .await;

    let out = env.cmd().args(["run", &job.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HTTP_PROXY is not one of the backend credential"),
        "{}",
        stderr(&out)
    );
    let out = env.cmd().args(["snapshots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HTTP_PROXY is not one of"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "restic reached the proxy");

    // The control: restic given that environment does go through the proxy. restic 0.17+
    // retries a failing backend for minutes, so it is stopped once the proxy saw it (or 60 s).
    let mut control = std::process::Command::new("restic")
        .args(["snapshots", "--no-lock", "--no-cache"])
        .env("RESTIC_REPOSITORY", repository)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("HTTP_PROXY", &proxy)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) == 0
        && std::time::Instant::now() < deadline
        && control.try_wait().unwrap().is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = control.kill();
    let _ = control.wait();
    assert!(seen.load(Ordering::SeqCst) > 0, "the proxy saw nothing");
}

/// A `restic` first on PATH that appends its environment to a file, then runs the real one.
fn recording_restic(env: &Env) -> (PathBuf, PathBuf) {
    let real = which_restic();
    let bin = env.dir.path().join("wrapbin");
    std::fs::create_dir_all(&bin).unwrap();
    let dump = env.dir.path().join("restic.env");
    let script = bin.join("restic");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo '--- restic'; env; }} >> '{}'\nexec '{}' \"$@\"\n",
            dump.display(),
            real.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, dump)
}

fn which_restic() -> PathBuf {
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v restic"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

#[tokio::test]
async fn restic_gets_a_clean_environment_without_the_database_password() {
    let env = Env::with_repo().await;
    let src = env.make_source("src", 2);
    let job = env.add_job("home", &[&src]).await;
    env.set_setting("repository_environment", "B2_ACCOUNT_ID=backend-marker-42")
        .await;
    let (bin, dump) = recording_restic(&env);
    // Trust authentication for the test's superuser: the password is carried, never checked.
    let db_password = "Db-Pa55word-Marker";
    let url = env.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{db_password}@"),
        1,
    );
    assert!(url.contains(db_password), "{url}");
    let fleet = |args: &[&str]| {
        env.cmd()
            .env("PATH", path_with(&bin))
            .env("DATABASE_URL", &url)
            .env("PGPASSWORD", "pg-password-marker")
            .env("RESTIC_FLEET_MARKER", "fleet-marker")
            .env("LC_TIME", "C.UTF-8")
            .args(args)
            .output()
            .unwrap()
    };
    assert_ok(&fleet(&["run", &job.to_string()]));
    assert_ok(&fleet(&["snapshots"]));

    let seen = std::fs::read_to_string(&dump).unwrap();
    assert!(seen.matches("--- restic").count() >= 2, "{seen}");
    for absent in [
        db_password,
        "DATABASE_URL",
        "PGPASSWORD",
        "pg-password-marker",
        "RESTIC_FLEET_",
        "fleet-marker",
    ] {
        assert!(!seen.contains(absent), "restic saw {absent}:\n{seen}");
    }
    for env_block in seen.split("--- restic").skip(1) {
        for present in [
            "B2_ACCOUNT_ID=backend-marker-42",
            "RESTIC_REPOSITORY=",
            "RESTIC_PASSWORD=",
            "LC_TIME=C.UTF-8",
            "\nPATH=",
            "\nHOME=",
        ] {
            assert!(
                env_block.contains(present),
                "{present} missing:\n{env_block}"
            );
        }
    }
}
