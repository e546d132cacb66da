//! `vista bundle`: what serves the API on a machine with no registry access, in one file: the binary,
//! the verified model pack and the shared libraries the binary and the pack's libraries load (all but
//! the C library's own, which every Linux has). As a tar.gz with `start.sh`, which runs from wherever
//! the archive was unpacked; or as a Debian package with a systemd unit (`dpkg-deb` builds it). Made on
//! a machine where `vista models fetch` worked; `ldd` finds the libraries.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::Args;
use flate2::write::GzEncoder;
use flate2::Compression;

use vista::models::manifest::{FileState, Manifest};

#[derive(Args)]
pub struct BundleArgs {
    /// The model pack to put in (it is verified first).
    #[arg(long, env = "VISTA_MODELS", default_value = "./models")]
    pub models: PathBuf,
    /// The file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// `tar`: a .tar.gz with start.sh; `deb`: a Debian package (/usr/bin/vista, the pack under
    /// /usr/lib/vista, a systemd unit running as its own user, data in /var/lib/vista, keys in /etc/vista).
    #[arg(long, value_enum, default_value_t = Format::Tar)]
    pub format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Tar,
    Deb,
}

/// The C library's own libraries: part of every Linux system, and tied to its loader.
const SYSTEM_LIBRARIES: [&str; 9] = [
    "linux-vdso",
    "ld-linux",
    "libc.so",
    "libm.so",
    "libpthread.so",
    "libdl.so",
    "librt.so",
    "libresolv.so",
    "libutil.so",
];

const START_SCRIPT: &str = r#"#!/bin/sh
# Starts vista from wherever this archive was unpacked; arguments go to `vista serve`
# (e.g. ./start.sh --addr 0.0.0.0:5000). Without configured keys it makes two in ./keys.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -z "${VISTA_API_KEYS:-}${VISTA_KEYS_FILE:-}${VISTA_GOOGLE_API_KEYS:-}${VISTA_AWS_CREDENTIALS:-}" ]; then
  export VISTA_KEYS_FILE="$HERE/keys"
  if [ ! -s "$VISTA_KEYS_FILE" ]; then
    (umask 077; for i in 1 2; do od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; echo; done > "$VISTA_KEYS_FILE")
    echo "Generated two API keys in $VISTA_KEYS_FILE:"
    sed 's/^/  /' "$VISTA_KEYS_FILE"
  fi
fi
exec "$HERE/bin/vista" serve --models "$HERE/models" --data-dir "${VISTA_DATA_DIR:-$HERE/data}" "$@"
"#;

/// The pack's files: every installed entry, verified against its sha256, and a custom manifest.
fn pack_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let (manifest, custom) = Manifest::for_dir(dir)?;
    let mut files: Vec<PathBuf> = custom.into_iter().collect();
    for entry in manifest.entries() {
        match entry.check(dir)? {
            FileState::Present => files.push(entry.path(dir)),
            FileState::Missing if entry.optional => {}
            FileState::Missing => {
                bail!("{} is missing: run `vista models fetch` first", entry.file)
            }
            FileState::HashMismatch { .. } => {
                bail!(
                    "{} does not match its sha256: run `vista models fetch` again",
                    entry.file
                )
            }
        }
    }
    Ok(files)
}

/// What `ldd` says `file` loads: library name → path, for those found outside the C library.
fn loaded_libraries(file: &Path, found: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    let output = Command::new("ldd")
        .arg(file)
        .output()
        .context("running ldd (it lists the libraries to bundle)")?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        let path = rest.split(" (").next().unwrap_or("").trim();
        if path.is_empty()
            || path == "not found"
            || SYSTEM_LIBRARIES.iter().any(|s| name.starts_with(s))
        {
            continue; // a library of the pack itself (loaded from it), or the C library's
        }
        found
            .entry(name.to_string())
            .or_insert_with(|| PathBuf::from(path));
    }
    Ok(())
}

fn is_shared_library(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".so") || name.contains(".so.")
}

/// What goes into a bundle: (path inside it, file), the pack's files verified first.
struct Contents {
    binary: PathBuf,
    /// (path relative to the pack, file).
    pack: Vec<(PathBuf, PathBuf)>,
    /// (library name, file).
    libraries: BTreeMap<String, PathBuf>,
}

fn contents(models: &Path) -> Result<Contents> {
    let models = models
        .canonicalize()
        .with_context(|| format!("the model pack {}", models.display()))?;
    let files = pack_files(&models)?;
    let binary = std::env::current_exe().context("finding the vista binary")?;
    let mut libraries = BTreeMap::new();
    loaded_libraries(&binary, &mut libraries)?;
    for file in files.iter().filter(|f| is_shared_library(f)) {
        loaded_libraries(file, &mut libraries)?;
    }
    // The pack's own libraries are loaded from the pack, not from lib/.
    let pack_names: Vec<&str> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str())
        .collect();
    libraries.retain(|name, _| !pack_names.contains(&name.as_str()));
    let pack = files
        .iter()
        .map(|f| Ok((f.strip_prefix(&models)?.to_path_buf(), f.clone())))
        .collect::<Result<_>>()?;
    Ok(Contents {
        binary,
        pack,
        libraries,
    })
}

pub fn bundle(args: BundleArgs) -> Result<ExitCode> {
    let contents = contents(&args.models)?;
    match args.format {
        Format::Tar => write_tar(&contents, &args.out)?,
        Format::Deb => write_deb(&contents, &args.out)?,
    }
    println!(
        "wrote {}: vista, {} model pack files, {} shared libraries",
        args.out.display(),
        contents.pack.len(),
        contents.libraries.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Appends a file made of `text` with `mode`.
fn append_text<W: std::io::Write>(
    archive: &mut tar::Builder<W>,
    path: &str,
    text: &str,
    mode: u32,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    archive.append_data(&mut header, path, text.as_bytes())?;
    Ok(())
}

/// The tar.gz: start.sh, bin/vista, models/, lib/.
fn write_tar(contents: &Contents, out: &Path) -> Result<()> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    // Model weights hardly compress; the fast level saves minutes and costs a few percent.
    let mut archive = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
    archive.follow_symlinks(true);
    append_text(&mut archive, "start.sh", START_SCRIPT, 0o755)?;
    archive.append_path_with_name(&contents.binary, "bin/vista")?;
    for (relative, file) in &contents.pack {
        archive.append_path_with_name(file, Path::new("models").join(relative))?;
    }
    for (name, path) in &contents.libraries {
        archive.append_path_with_name(path, Path::new("lib").join(name))?;
    }
    archive.into_inner()?.finish()?;
    Ok(())
}

const DEB_UNIT: &str = r#"[Unit]
Description=vista image analysis server
After=network.target

[Service]
# Its own user, made by systemd; data in /var/lib/vista, keys passed in from /etc/vista.
DynamicUser=yes
StateDirectory=vista
LoadCredential=keys:/etc/vista/keys
EnvironmentFile=-/etc/vista/environment
Environment=LD_LIBRARY_PATH=/usr/lib/vista/lib
ExecStart=/usr/bin/vista serve --models /usr/lib/vista/models --data-dir /var/lib/vista --keys-file ${CREDENTIALS_DIRECTORY}/keys $VISTA_ARGS
Restart=on-failure
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"#;

const DEB_ENVIRONMENT: &str =
    "# Settings of vista.service: VISTA_* variables (see `vista serve --help`) and
# VISTA_ARGS, more arguments for `vista serve`. The default listens on this machine only.
VISTA_ARGS=--addr 127.0.0.1:5000
";

/// Makes the two API keys at first install (also into a temporary root: DPKG_ROOT), and starts the
/// service where systemd runs.
const DEB_POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
  keys="${DPKG_ROOT:-}/etc/vista/keys"
  if [ ! -s "$keys" ]; then
    (umask 077; for i in 1 2; do od -An -N16 -tx1 /dev/urandom | tr -d ' 
'; echo; done > "$keys")
    echo "vista: two API keys are in /etc/vista/keys"
  fi
  if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now vista.service || true
  fi
fi
"#;

const DEB_PRERM: &str = r#"#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now vista.service || true
fi
"#;

/// The Debian package, staged in a directory and built by `dpkg-deb`.
fn write_deb(contents: &Contents, out: &Path) -> Result<()> {
    let stage = std::env::temp_dir().join(format!("vista-deb-{}", uuid::Uuid::new_v4()));
    let result = stage_deb(contents, &stage).and_then(|()| {
        let status = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
            .arg(&stage)
            .arg(out)
            .status()
            .context("running dpkg-deb (it builds the package)")?;
        if !status.success() {
            bail!("dpkg-deb failed");
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&stage);
    result
}

fn stage_deb(contents: &Contents, stage: &Path) -> Result<()> {
    let put = |relative: &str, text: &str, mode: u32| -> Result<()> {
        let path = stage.join(relative);
        std::fs::create_dir_all(path.parent().context("a staged path")?)?;
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        Ok(())
    };
    let copy = |from: &Path, relative: &Path| -> Result<u64> {
        let path = stage.join(relative);
        std::fs::create_dir_all(path.parent().context("a staged path")?)?;
        std::fs::copy(from, &path).with_context(|| format!("copying {}", from.display()))
    };
    let mut bytes = copy(&contents.binary, Path::new("usr/bin/vista"))?;
    for (relative, file) in &contents.pack {
        bytes += copy(file, &Path::new("usr/lib/vista/models").join(relative))?;
    }
    for (name, file) in &contents.libraries {
        bytes += copy(file, &Path::new("usr/lib/vista/lib").join(name))?;
    }
    put("lib/systemd/system/vista.service", DEB_UNIT, 0o644)?;
    put("etc/vista/environment", DEB_ENVIRONMENT, 0o644)?;
    let control = format!(
        "Package: vista\nVersion: {}\nArchitecture: amd64\nMaintainer: vista developers <vista@localhost>\n\
         Installed-Size: {}\nDepends: libc6\nSection: net\nPriority: optional\n\
         Description: self-hosted image analysis server\n speaks the Azure AI Vision, Google Cloud Vision, AWS Rekognition\n \
         and DeepStack APIs with its model pack included; nothing leaves the machine.\n",
        env!("CARGO_PKG_VERSION"),
        bytes / 1024
    );
    put("DEBIAN/control", &control, 0o644)?;
    put("DEBIAN/conffiles", "/etc/vista/environment\n", 0o644)?;
    put("DEBIAN/postinst", DEB_POSTINST, 0o755)?;
    put("DEBIAN/prerm", DEB_PRERM, 0o755)?;
    Ok(())
}
