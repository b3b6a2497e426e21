#!/usr/bin/env python3
"""Writes many restic snapshots into a local restic repository, quickly, for benchmarks.

    scripts/bench/snapshots.py REPO [--count N] [--jobs M] [--devices D] [--days DAYS]
                               [--host-prefix P] [--tree ID --path P ...] [--restic BIN]
                               [--manifest FILE] [--seed S]

The password comes from RESTIC_PASSWORD or RESTIC_PASSWORD_FILE, as for restic. The snapshots
are what `restic-fleet run` makes: host = the device id, tags `backup:<job uuid>` and
`device:<device id>`. Snapshot i belongs to job i % M, job j to device j % D (default: 5 jobs a
device), so each job keeps N / M snapshots; their times are spread evenly over the last DAYS days.
Job uuids are uuid5 of the seed and the job's number, the same on every run; --manifest writes
`job_id,device_id,snapshots` lines (CSV with a header) for loading the jobs into a database.

Every snapshot points at the tree of a snapshot a real `restic backup` made (the first one found
unless --tree names one), so `restic check` finds the tree and accepts them.

The format, from restic's doc/design.rst and internal/repository/crypto: a key file in keys/
holds scrypt parameters and a salt; scrypt(password) gives 64 bytes, the AES-256 key (32) and
the Poly1305-AES MAC key (k 16, r 16), which decrypt the key file's `data`: the master key as
JSON. Every file is IV (16 random bytes) || AES-256-CTR(plaintext) || Poly1305-AES MAC of the
ciphertext, whose one-time key is r || AES-128_k(IV) (Poly1305 clamps r itself). A file is
named by the SHA-256 of its stored bytes. Repository format 2 zstd-compresses snapshot files
(first byte 2) but reads a plaintext that starts with `{` as plain JSON (restic 0.14 through
0.19: decompressUnpacked), so the snapshots are written uncompressed in both formats; a
compressed template snapshot is read through `restic cat snapshot` instead.

The scrypt derivation runs once; each snapshot costs two AES calls, a Poly1305, a SHA-256 and
one write (100,000 snapshots take seconds).
"""

import argparse
import base64
import csv
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305
except ImportError:
    sys.exit(
        "snapshots.py needs the Python package cryptography; "
        "run scripts/install-deps.sh --tests (or apt-get install python3-cryptography)"
    )

# Fixed so that job uuids are the same on every run and every machine.
NAMESPACE = uuid.UUID("6f1d2c3a-5b4e-4f60-9a7b-8c9d0e1f2a3b")
# Marks the snapshots written here, so that a later run takes its tree from a real one.
PROGRAM = "restic-fleet bench snapshots.py"


class Unauthenticated(Exception):
    """The MAC of a file does not match: wrong key, or a damaged file."""


def mac(k: bytes, r: bytes, nonce: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    s = enc.update(nonce) + enc.finalize()
    return Poly1305.generate_tag(r + s, data)


def decrypt(key: dict, blob: bytes) -> bytes:
    if len(blob) < 32:
        raise Unauthenticated("too short")
    nonce, ct, tag = blob[:16], blob[16:-16], blob[-16:]
    if mac(key["k"], key["r"], nonce, ct) != tag:
        raise Unauthenticated("MAC mismatch")
    dec = Cipher(algorithms.AES(key["encrypt"]), modes.CTR(nonce)).decryptor()
    return dec.update(ct) + dec.finalize()


def encrypt(key: dict, plain: bytes, nonce: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key["encrypt"]), modes.CTR(nonce)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    return nonce + ct + mac(key["k"], key["r"], nonce, ct)


def password() -> str:
    if "RESTIC_PASSWORD" in os.environ:
        return os.environ["RESTIC_PASSWORD"]
    path = os.environ.get("RESTIC_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            sys.exit(f"cannot read RESTIC_PASSWORD_FILE {path}: {e.strerror}; give a readable file")
    sys.exit("no password: set RESTIC_PASSWORD or RESTIC_PASSWORD_FILE to the repository's password")


def master_key(repo: str, pw: str) -> dict:
    """The master key, from the first key file the password opens (as restic tries them)."""
    keys_dir = os.path.join(repo, "keys")
    try:
        names = sorted(os.listdir(keys_dir))
    except OSError:
        sys.exit(f"{repo} is not a local restic repository (no keys/ directory); give its path")
    for name in names:
        with open(os.path.join(keys_dir, name), "rb") as f:
            kf = json.load(f)
        if kf.get("kdf") != "scrypt":
            continue
        derived = hashlib.scrypt(
            pw.encode(), salt=base64.b64decode(kf["salt"]), n=kf["N"], r=kf["r"], p=kf["p"],
            maxmem=2**31 - 1, dklen=64,
        )
        user = {"encrypt": derived[:32], "k": derived[32:48], "r": derived[48:64]}
        try:
            plain = decrypt(user, base64.b64decode(kf["data"]))
        except Unauthenticated:
            continue
        m = json.loads(plain)
        return {
            "encrypt": base64.b64decode(m["encrypt"]),
            "k": base64.b64decode(m["mac"]["k"]),
            "r": base64.b64decode(m["mac"]["r"]),
        }
    sys.exit(f"the password opens none of the {len(names)} keys of {repo}; give the repository's password")


def template(repo: str, key: dict, restic: str, tree: str | None, paths: list[str]) -> dict:
    """The snapshot the new ones copy: one a real backup made, unless --tree is given."""
    if tree:
        return {"tree": tree, "paths": paths or ["/bench"]}
    snap_dir = os.path.join(repo, "snapshots")
    for name in sorted(os.listdir(snap_dir)):
        with open(os.path.join(snap_dir, name), "rb") as f:
            plain = decrypt(key, f.read())
        if plain[:1] == b"\x02":
            # Compressed (format 2); Python has no zstd before 3.14: restic decodes it.
            try:
                done = subprocess.run(
                    [restic, "-r", repo, "cat", "snapshot", name, "--no-lock"],
                    capture_output=True, check=False,
                )
            except OSError as e:
                sys.exit(f"cannot run {restic} ({e.strerror}) to read a compressed snapshot; give --restic or --tree")
            if done.returncode != 0:
                err = done.stderr.decode(errors="replace").strip()
                sys.exit(f"`{restic} cat snapshot {name}` failed ({err}); give --tree instead")
            return json.loads(done.stdout)
        sn = json.loads(plain)
        if sn.get("program_version") != PROGRAM:
            return sn
    sys.exit(f"{repo} has no snapshot of a real backup to take the tree from; run `restic backup` once or give --tree")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("repo", help="path of a local restic repository")
    ap.add_argument("--count", type=int, default=1000, help="snapshots to write")
    ap.add_argument("--jobs", type=int, help="job uuids to spread them over (default: --count)")
    ap.add_argument("--devices", type=int, help="devices (hosts) to spread the jobs over (default: jobs / 5)")
    ap.add_argument("--days", type=float, default=30.0, help="the snapshots' times span this many days up to now")
    ap.add_argument("--host-prefix", default="device-", help="hostname = prefix + device number")
    ap.add_argument("--tree", help="tree id of the snapshots (default: that of a snapshot restic made)")
    ap.add_argument("--path", action="append", default=[], help="path recorded in the snapshots (with --tree)")
    ap.add_argument("--restic", default="restic", help="restic binary, to read a compressed template snapshot")
    ap.add_argument("--manifest", help="write job_id,device_id,snapshots CSV here")
    ap.add_argument("--seed", default="bench", help="job uuids are uuid5(seed, job number)")
    a = ap.parse_args()
    jobs = a.jobs or a.count
    devices = a.devices or max(1, jobs // 5)
    if a.count < 1 or jobs < 1 or devices < 1 or jobs > a.count or devices > jobs:
        ap.error("need 1 <= --devices <= --jobs <= --count")

    started = time.monotonic()
    key = master_key(a.repo, password())
    tpl = template(a.repo, key, a.restic, a.tree, a.path)
    opened = time.monotonic() - started

    width = len(str(devices - 1))
    hosts = [f"{a.host_prefix}{d:0{width}d}" for d in range(devices)]
    job_ids = [str(uuid.uuid5(NAMESPACE, f"{a.seed}:{j}")) for j in range(jobs)]
    base = {
        "tree": tpl["tree"],
        "paths": tpl["paths"],
        "username": tpl.get("username", "bench"),
        "program_version": PROGRAM,
    }
    for field in ("uid", "gid"):
        if field in tpl:
            base[field] = tpl[field]

    snap_dir = os.path.join(a.repo, "snapshots")
    # restic's local backend makes its files read-only; the config file shows the mode it uses.
    mode = os.stat(os.path.join(a.repo, "config")).st_mode & 0o777
    end = datetime.datetime.now(datetime.timezone.utc)
    span = datetime.timedelta(days=a.days)
    nonces = os.urandom(16 * a.count)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    for i in range(a.count):
        j = i % jobs
        host = hosts[j % devices]
        t = end - span * ((a.count - 1 - i) / a.count)
        sn = dict(base)
        sn["time"] = t.isoformat().replace("+00:00", "Z")
        sn["hostname"] = host
        sn["tags"] = [f"backup:{job_ids[j]}", f"device:{host}"]
        blob = encrypt(key, dumps(sn).encode(), nonces[16 * i:16 * i + 16])
        fd = os.open(os.path.join(snap_dir, hashlib.sha256(blob).hexdigest()), flags, mode)
        try:
            os.write(fd, blob)
        finally:
            os.close(fd)

    if a.manifest:
        per_job = [a.count // jobs + (1 if j < a.count % jobs else 0) for j in range(jobs)]
        with open(a.manifest, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["job_id", "device_id", "snapshots"])
            for j in range(jobs):
                w.writerow([job_ids[j], hosts[j % devices], per_job[j]])
    total = time.monotonic() - started
    print(
        f"wrote {a.count} snapshots ({jobs} jobs, {devices} devices) into {a.repo} in {total:.1f} s "
        f"(key and template {opened:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
