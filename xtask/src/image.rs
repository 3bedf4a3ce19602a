//! `cargo xtask image`: the OCI image of hdi, written as an OCI image layout without a container
//! engine.
//!
//! Owns the image's name and tag ([`NAME`], [`TAG`]; the chart refers to `hdi:<version>`), what
//! goes into it, the writer of the layout (`oci-layout`, `index.json`, `blobs/sha256/…`: a
//! reproducible ustar writer, Debian's `gzip -n`, ring's sha256), and the check `cargo xtask test`
//! runs on it: `skopeo inspect`, `umoci unpack`, and every binary's `--help` chrooted into the
//! unpacked root file system as the image's user.
//!
//! The image has two layers. The base: the shared libraries `ldd` resolves for the binaries and
//! the dynamic loader, copied (symlinks followed) to the paths ldd prints; `/etc/passwd` and
//! `/etc/group` with the non-root user `hdi` (65532) the config runs as; `/etc/nsswitch.conf`; the
//! host's CA bundle; `/tmp` and `/home/hdi`. The binaries: `/usr/local/bin/{hdi-control-plane,
//! hdi-node-agent, hdi-broker, hdi-executor, hdictl}`. A rebuild that changes only the binaries
//! keeps the base layer's digest. Entries are sorted, their mtime is 0 and files belong to root,
//! so the same inputs give the same digests.
//!
//! Speed: xtask is an unoptimised build, in which Rust's deflate (flate2 on zlib-rs) runs at
//! ~4 MB/s and sha2 at ~37 MB/s, against ~450 MB of debug binaries. So layers are compressed by
//! the host's `gzip` (C zlib; an essential Debian package; `-n` keeps its output a function of its
//! input and level) and digested with ring (assembly). Optimising sha2 and zlib-rs in the dev
//! profile instead would rebuild sqlx and DataFusion in every checkout once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::util::target_dir;

/// The image's name: the chart's `image.repository`.
pub const NAME: &str = "hdi";
/// The image's tag: the workspace version.
pub const TAG: &str = env!("CARGO_PKG_VERSION");

/// `hdi:<version>`: the image's `org.opencontainers.image.ref.name` in `index.json`, so
/// `skopeo … oci:<dir>:hdi:<version>` and `umoci … --image <dir>:hdi:<version>` find it.
pub fn reference() -> String {
    format!("{NAME}:{TAG}")
}

/// The binaries in `/usr/local/bin` (each is also the name of the package that builds it).
pub const BINARIES: &[&str] = &[
    "hdi-control-plane",
    "hdi-node-agent",
    "hdi-broker",
    "hdi-executor",
    "hdictl",
];

/// The image's user and group id (`hdi`; 65532 is distroless's `nonroot`).
const USER_ID: u32 = 65532;
/// The user's home and the image's working directory.
const HOME: &str = "/home/hdi";
/// The CA bundle, copied from the host, and named by `SSL_CERT_FILE` (OpenSSL, rustls).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the binaries go.
const BIN_DIR: &str = "/usr/local/bin";
/// Every entry's mtime, and the config's `created`: fixed, for reproducible digests.
const MTIME: u64 = 0;
const CREATED: &str = "1970-01-01T00:00:00Z";

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Flags of `cargo xtask image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Use the debug binaries (target/debug) instead of release ones: quicker, for tests.
    #[arg(long)]
    debug: bool,
    /// Where to write the OCI image layout (default: <target>/image). The directory holds this
    /// one image: blobs of earlier builds are removed.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Do not build; use the binaries already in the target directory.
    #[arg(long)]
    no_build: bool,
    /// Then check the image as `cargo xtask test` does: rebuild it (same manifest digest),
    /// `skopeo inspect`, `umoci unpack`, and run every binary from its root file system (root
    /// needed).
    #[arg(long)]
    check: bool,
}

/// Builds the binaries (unless `--no-build`) and writes the image.
pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    let profile = if args.debug { "debug" } else { "release" };
    if !args.no_build {
        eprintln!("xtask: building the {profile} binaries");
        crate::tools::ensure_build_dependencies()?;
        crate::util::run(
            "cargo build",
            &mut crate::util::cargo_build(BINARIES, !args.debug),
        )?;
    }
    let bin_dir = target_dir()?.join(profile);
    let output = match args.output {
        Some(dir) => std::path::absolute(dir).context("cannot resolve --output")?,
        None => target_dir()?.join("image"),
    };
    let level = if args.debug {
        Gzip::Fast
    } else {
        Gzip::Default
    };
    if args.check {
        return check(&bin_dir, &output, level);
    }
    let started = Instant::now();
    let image = build(&bin_dir, &output, level)?;
    image.print(&output, started);
    // For scripts: `skopeo copy $(cargo xtask image) docker://…`.
    println!("oci:{}:{}", output.display(), reference());
    Ok(())
}

/// How hard `gzip` compresses the layers (the digests depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gzip {
    /// `-1`: for the debug binaries' image of the tests (~75 MB/s).
    Fast,
    /// `-6`: for the release image.
    Default,
}

impl Gzip {
    fn flag(self) -> &'static str {
        match self {
            Gzip::Fast => "-1",
            Gzip::Default => "-6",
        }
    }
}

/// Writes the image of the binaries in `bin_dir` as an OCI layout in `output`.
pub fn build(bin_dir: &Path, output: &Path, level: Gzip) -> anyhow::Result<Written> {
    let binaries = BINARIES
        .iter()
        .map(|name| {
            let path = bin_dir.join(name);
            if !path.is_file() {
                bail!("{} is missing; build it first", path.display());
            }
            Ok(path)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let layers = [base_layer(&binaries)?, binaries_layer(&binaries)?];
    write_layout(output, &reference(), &image_config()?, &layers, level)
}

/// The image's runtime configuration.
fn image_config() -> anyhow::Result<ImageConfig> {
    let labels = [
        ("org.opencontainers.image.title", NAME),
        ("org.opencontainers.image.version", TAG),
        (
            "org.opencontainers.image.description",
            "hdi: Kafka and Spark clusters as a service (control plane, node agent, broker, \
             executor, hdictl)",
        ),
        (
            "org.opencontainers.image.licenses",
            env!("CARGO_PKG_LICENSE"),
        ),
    ];
    Ok(ImageConfig {
        architecture: oci_architecture(std::env::consts::ARCH)?.to_owned(),
        // The chart sets the command of the node agent; the control plane is the default.
        entrypoint: vec![format!("{BIN_DIR}/hdi-control-plane")],
        cmd: vec!["serve".to_owned()],
        env: vec![
            format!("PATH={BIN_DIR}:/usr/bin:/bin"),
            format!("HOME={HOME}"),
            format!("SSL_CERT_FILE={CA_BUNDLE}"),
        ],
        // Numeric, so that Kubernetes' runAsNonRoot can verify it (a name it cannot).
        user: format!("{USER_ID}:{USER_ID}"),
        working_dir: HOME.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

/// Go's name of a Rust target architecture, which OCI uses.
fn oci_architecture(arch: &str) -> anyhow::Result<&'static str> {
    Ok(match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => bail!("no OCI name known for the architecture {other}"),
    })
}

/// The base layer: what the binaries need at run time, from this host.
fn base_layer(binaries: &[PathBuf]) -> anyhow::Result<Layer> {
    let mut layer = Layer::new("base: shared libraries, /etc, CA certificates");
    let mut libraries = BTreeSet::new();
    for binary in binaries {
        libraries.extend(shared_libraries(binary)?);
    }
    for library in &libraries {
        let source = std::fs::canonicalize(library)
            .with_context(|| format!("cannot resolve {}", library.display()))?;
        let mode = std::fs::metadata(&source)?.permissions().mode() & 0o7777;
        layer.add(path_str(library)?, Content::File(source), mode, 0)?;
    }
    let passwd = format!(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n\
         hdi:x:{USER_ID}:{USER_ID}:hdi:{HOME}:/usr/sbin/nologin\n"
    );
    layer.add("/etc/passwd", Content::Bytes(passwd.into()), 0o644, 0)?;
    let group = format!("root:x:0:\nhdi:x:{USER_ID}:\n");
    layer.add("/etc/group", Content::Bytes(group.into()), 0o644, 0)?;
    // glibc's built-in files and dns services (2.34+) need no NSS modules beside libc.
    let nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
                    networks: files\nprotocols: files\nservices: files\n";
    layer.add(
        "/etc/nsswitch.conf",
        Content::Bytes(nsswitch.into()),
        0o644,
        0,
    )?;
    let bundle = std::fs::canonicalize(CA_BUNDLE).with_context(|| {
        format!("the host's CA certificates ({CA_BUNDLE}; apt-get install ca-certificates)")
    })?;
    layer.add(CA_BUNDLE, Content::File(bundle), 0o644, 0)?;
    layer.add("/tmp", Content::Dir, 0o1777, 0)?;
    layer.add(HOME, Content::Dir, 0o755, USER_ID)?;
    Ok(layer)
}

/// The binaries' layer.
fn binaries_layer(binaries: &[PathBuf]) -> anyhow::Result<Layer> {
    let mut layer = Layer::new("binaries: /usr/local/bin");
    for binary in binaries {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", binary.display()))?;
        layer.add(
            &format!("{BIN_DIR}/{name}"),
            Content::File(binary.clone()),
            0o755,
            0,
        )?;
    }
    Ok(layer)
}

/// The shared libraries `binary` loads, and its dynamic loader, as `ldd` resolves them.
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if text.contains("not a dynamic executable") || errors.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed ({}): {errors}", binary.display(), out.status);
    }
    parse_ldd(&text).with_context(|| format!("ldd {}", binary.display()))
}

/// The paths in `ldd`'s output: `name => /path (0x…)` and the loader's `/path (0x…)`; the
/// kernel's vDSO has no path. A library ldd cannot find is an error.
fn parse_ldd(text: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        let resolved = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("the shared library {} is not found", name.trim());
                }
                rest
            }
            None => line,
        };
        if let Some(path) = resolved.split_whitespace().next()
            && path.starts_with('/')
        {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The runtime configuration of an image (the `config` object of the OCI image config).
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub architecture: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// The `config` object of the image config.
    fn runtime(&self) -> Value {
        json!({
            "User": self.user,
            "Env": self.env,
            "Entrypoint": self.entrypoint,
            "Cmd": self.cmd,
            "WorkingDir": self.working_dir,
            "Labels": self.labels,
        })
    }

    /// The OCI image config document for layers with these uncompressed digests.
    fn document(&self, layers: &[Layer], diff_ids: &[String]) -> Value {
        let history: Vec<Value> = layers
            .iter()
            .map(|layer| {
                json!({
                    "created": CREATED,
                    "created_by": format!("cargo xtask image: {}", layer.what),
                })
            })
            .collect();
        json!({
            "created": CREATED,
            "architecture": self.architecture,
            "os": "linux",
            "config": self.runtime(),
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
            "history": history,
        })
    }
}

/// What goes into one entry of a layer.
#[derive(Debug, Clone)]
pub enum Content {
    Dir,
    Bytes(Vec<u8>),
    /// A regular file copied from this path (read while the layer is written).
    File(PathBuf),
}

#[derive(Debug, Clone)]
struct Entry {
    content: Content,
    mode: u32,
    /// Owner and group.
    owner: u32,
}

/// One layer: entries by path (relative to `/`, without a trailing slash), written in this
/// (sorted) order, which puts every directory before what it holds.
#[derive(Debug, Clone)]
pub struct Layer {
    what: String,
    entries: BTreeMap<String, Entry>,
}

impl Layer {
    pub fn new(what: &str) -> Self {
        Layer {
            what: what.to_owned(),
            entries: BTreeMap::new(),
        }
    }

    /// Adds an entry at `path` (absolute); missing parent directories are added (0755, root).
    /// A directory added later replaces such a default.
    pub fn add(
        &mut self,
        path: &str,
        content: Content,
        mode: u32,
        owner: u32,
    ) -> anyhow::Result<()> {
        let path = path.trim_start_matches('/');
        let components: Vec<&str> = path.split('/').collect();
        if components
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
        {
            bail!("{path:?} is not a plain absolute path");
        }
        for end in 1..components.len() {
            let parent = components[..end].join("/");
            let entry = self.entries.entry(parent).or_insert(Entry {
                content: Content::Dir,
                mode: 0o755,
                owner: 0,
            });
            if !matches!(entry.content, Content::Dir) {
                bail!("{path:?} is inside a file of the layer");
            }
        }
        self.entries.insert(
            path.to_owned(),
            Entry {
                content,
                mode,
                owner,
            },
        );
        Ok(())
    }
}

/// A descriptor of a written blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

/// What [`write_layout`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Blob,
    /// Per layer: what it holds, its (gzip'd) blob, its uncompressed digest and size.
    pub layers: Vec<(String, Blob, Blob)>,
}

impl Written {
    fn print(&self, output: &Path, started: Instant) {
        eprintln!(
            "xtask: wrote the image {} ({}) to {} in {:.1}s",
            reference(),
            self.manifest.digest,
            output.display(),
            started.elapsed().as_secs_f64()
        );
        for (what, blob, unpacked) in &self.layers {
            eprintln!(
                "  layer {}: {:.1} MB gzip'd, {:.1} MB unpacked: {what}",
                blob.digest.get(..19).unwrap_or(&blob.digest),
                megabytes(blob.size),
                megabytes(unpacked.size)
            );
        }
        eprintln!(
            "  (skopeo inspect oci:{dir}:{r}; skopeo copy oci:{dir}:{r} docker://<registry>/{r})",
            dir = output.display(),
            r = reference()
        );
    }
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Writes an OCI image layout holding one image, named `reference`, in `dir`: the layers, the
/// config, the manifest, `index.json` and `oci-layout`. Blobs of earlier images in `dir` are
/// removed; a non-empty `dir` that is not an image layout is refused.
pub fn write_layout(
    dir: &Path,
    reference: &str,
    config: &ImageConfig,
    layers: &[Layer],
    level: Gzip,
) -> anyhow::Result<Written> {
    prepare_layout_dir(dir)?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .with_context(|| format!("cannot create {}", blobs.display()))?;
    let mut written_layers = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let (blob, unpacked) = write_layer(&blobs, index, layer, level)
            .with_context(|| format!("writing the layer {}", layer.what))?;
        written_layers.push((layer.what.clone(), blob, unpacked));
    }
    let diff_ids: Vec<String> = written_layers
        .iter()
        .map(|(_, _, unpacked)| unpacked.digest.clone())
        .collect();
    let config_blob = write_blob(
        &blobs,
        &serde_json::to_vec(&config.document(layers, &diff_ids))?,
    )?;
    let layer_descriptors: Vec<Value> = written_layers
        .iter()
        .map(|(_, blob, _)| json!({"mediaType": MEDIA_LAYER, "digest": blob.digest, "size": blob.size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
        "layers": layer_descriptors,
    });
    let manifest_blob = write_blob(&blobs, &serde_json::to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_blob.digest,
            "size": manifest_blob.size,
            "platform": {"architecture": config.architecture, "os": "linux"},
            "annotations": {REF_NAME: reference},
        }],
    });
    write_atomically(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_atomically(&dir.join("index.json"), &serde_json::to_vec(&index)?)?;
    let keep: BTreeSet<String> = [&manifest_blob, &config_blob]
        .into_iter()
        .chain(written_layers.iter().map(|(_, blob, _)| blob))
        .map(|blob| hex_of(&blob.digest).to_owned())
        .collect();
    for stale in std::fs::read_dir(&blobs)? {
        let stale = stale?;
        if !keep.contains(stale.file_name().to_string_lossy().as_ref()) {
            std::fs::remove_file(stale.path())
                .with_context(|| format!("cannot remove {}", stale.path().display()))?;
        }
    }
    Ok(Written {
        manifest: manifest_blob,
        layers: written_layers,
    })
}

/// Creates `dir`, or checks that it is empty or an image layout (which it then replaces).
fn prepare_layout_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let empty = std::fs::read_dir(dir)?.next().is_none();
    if !empty && !dir.join("oci-layout").is_file() {
        bail!(
            "{} is neither empty nor an OCI image layout; choose another --output",
            dir.display()
        );
    }
    Ok(())
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> anyhow::Result<Blob> {
    let hex = hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    write_atomically(&blobs.join(&hex), bytes)?;
    Ok(Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len() as u64,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 digest and size of a file.
fn digest_file(path: &Path) -> anyhow::Result<Blob> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hashing = Hashing::new(io::sink());
    io::copy(&mut BufReader::with_capacity(1 << 20, file), &mut hashing)?;
    Ok(hashing.finish().1)
}

/// Streams `layer` as a tar through `gzip -n` into `blobs`: returns the blob and the
/// uncompressed tar's digest and size (the config's `diff_id`).
fn write_layer(
    blobs: &Path,
    index: usize,
    layer: &Layer,
    level: Gzip,
) -> anyhow::Result<(Blob, Blob)> {
    let tmp = blobs.join(format!(".tmp-{}-{index}", std::process::id()));
    let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    // gzip writes straight into the blob's file, so feeding its stdin cannot deadlock.
    let mut gzip = Command::new("gzip")
        .args(["-n", "-c", level.flag()])
        // Old gzips read options from $GZIP; nothing but `level` may change the output.
        .env_remove("GZIP")
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("cannot run gzip")?;
    let stdin = gzip.stdin.take().context("gzip has no stdin")?;
    let mut tar = TarWriter {
        out: Hashing::new(BufWriter::with_capacity(1 << 20, stdin)),
    };
    let fed = layer
        .entries
        .iter()
        .try_for_each(|(path, entry)| tar.append(path, entry).with_context(|| format!("/{path}")))
        .and_then(|()| tar.finish())
        .and_then(|out| {
            let (buffered, unpacked) = out.finish();
            // Closing stdin ends gzip's input.
            drop(buffered.into_inner().map_err(|e| e.into_error())?);
            Ok(unpacked)
        });
    let status = gzip.wait().context("gzip")?;
    let unpacked = fed.with_context(|| format!("feeding gzip ({status})"))?;
    if !status.success() {
        bail!("gzip failed ({status})");
    }
    let blob = digest_file(&tmp)?;
    std::fs::rename(&tmp, blobs.join(hex_of(&blob.digest)))?;
    Ok((blob, unpacked))
}

/// A writer that digests (sha256) and counts what passes through it.
struct Hashing<W> {
    inner: W,
    context: ring::digest::Context,
    size: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            context: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        }
    }

    fn finish(self) -> (W, Blob) {
        let blob = Blob {
            digest: format!("sha256:{}", hex(self.context.finish().as_ref())),
            size: self.size,
        };
        (self.inner, blob)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or(buf);
        self.context.update(written);
        self.size += written.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const BLOCK: usize = 512;

/// A POSIX ustar writer for directories and regular files, with fixed mtimes.
struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    fn append(&mut self, path: &str, entry: &Entry) -> anyhow::Result<()> {
        let (name, kind, size) = match &entry.content {
            Content::Dir => (format!("{path}/"), b'5', 0),
            Content::Bytes(bytes) => (path.to_owned(), b'0', bytes.len() as u64),
            Content::File(source) => {
                let size = std::fs::metadata(source)
                    .with_context(|| format!("cannot read {}", source.display()))?
                    .len();
                (path.to_owned(), b'0', size)
            }
        };
        let header = ustar_header(&name, kind, entry.mode, entry.owner, size)?;
        self.out.write_all(&header)?;
        match &entry.content {
            Content::Dir => {}
            Content::Bytes(bytes) => self.out.write_all(bytes)?,
            Content::File(source) => {
                let file = File::open(source)
                    .with_context(|| format!("cannot open {}", source.display()))?;
                let copied = io::copy(&mut file.take(size), &mut self.out)?;
                if copied != size {
                    bail!("{} changed while it was read", source.display());
                }
            }
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.out.write_all(&[0; BLOCK][..padding as usize])?;
        Ok(())
    }

    /// Writes the two zero blocks that end an archive.
    fn finish(mut self) -> anyhow::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        Ok(self.out)
    }
}

/// A ustar header: `name` (a trailing `/` for directories) split into prefix and name when
/// longer than 100 bytes; uid = gid = `owner`; mtime [`MTIME`].
fn ustar_header(
    name: &str,
    kind: u8,
    mode: u32,
    owner: u32,
    size: u64,
) -> anyhow::Result<[u8; BLOCK]> {
    let mut header = [0u8; BLOCK];
    let (prefix, name) = split_name(name)?;
    header[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut header[100..108], u64::from(mode))?;
    octal(&mut header[108..116], u64::from(owner))?;
    octal(&mut header[116..124], u64::from(owner))?;
    octal(&mut header[124..136], size)?;
    octal(&mut header[136..148], MTIME)?;
    header[148..156].fill(b' ');
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    octal(&mut header[329..337], 0)?;
    octal(&mut header[337..345], 0)?;
    header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    Ok(header)
}

/// Splits a path into ustar's prefix (≤ 155 bytes) and name (≤ 100 bytes) at a `/`.
fn split_name(path: &str) -> anyhow::Result<(&str, &str)> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let trimmed = path.trim_end_matches('/');
    for (at, _) in trimmed.match_indices('/') {
        let (prefix, name) = (&path[..at], &path[at + 1..]);
        if prefix.len() <= 155 && name.len() <= 100 {
            return Ok((prefix, name));
        }
    }
    bail!("the path {path:?} is too long for a ustar header")
}

/// Writes `value` in octal, zero-padded, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) -> anyhow::Result<()> {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    if text.len() > digits {
        bail!(
            "{value} does not fit a {}-byte tar header field",
            field.len()
        );
    }
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// The check of `cargo xtask test` (and `cargo xtask image --check`): writes the image of the
/// binaries in `bin_dir` to `layout` twice (the manifest digest must not change), inspects it
/// with skopeo (config, user, entrypoint, labels), unpacks it with umoci, and runs every binary's
/// `--help` chrooted into the root file system as the image's user with the image's environment:
/// each must exit 0 and print its usage, which proves the libraries in the image suffice.
pub fn check(bin_dir: &Path, layout: &Path, level: Gzip) -> anyhow::Result<()> {
    if crate::sys::effective_uid() != 0 {
        bail!("checking the image needs root (umoci unpack, chroot)");
    }
    crate::tools::ensure_image_tools()?;
    let started = Instant::now();
    let first = build(bin_dir, layout, level)?;
    first.print(layout, started);
    let again = Instant::now();
    let second = build(bin_dir, layout, level)?;
    if second.manifest != first.manifest {
        bail!(
            "the image is not reproducible: {} then {}",
            first.manifest.digest,
            second.manifest.digest
        );
    }
    eprintln!(
        "xtask: rebuilt in {:.1}s with the same manifest digest",
        again.elapsed().as_secs_f64()
    );
    let config = inspect(layout)?;
    let bundle = layout.with_file_name(format!(
        "{}.bundle",
        layout
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("image")
    ));
    let result = unpack_and_run(layout, &bundle, &config);
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

/// `skopeo inspect` of the layout: its labels, layers and architecture, and the runtime config
/// (user, entrypoint, env…) as written.
fn inspect(layout: &Path) -> anyhow::Result<ImageConfig> {
    let name = format!("oci:{}:{}", layout.display(), reference());
    let summary: Value = serde_json::from_str(&crate::util::output(
        "skopeo inspect",
        Command::new("skopeo").args(["inspect", &name]),
    )?)
    .context("skopeo inspect printed no JSON")?;
    let expected = image_config()?;
    if summary["Labels"]["org.opencontainers.image.version"] != TAG
        || summary["Layers"].as_array().map(Vec::len) != Some(2)
        || summary["Architecture"] != expected.architecture.as_str()
    {
        bail!("skopeo inspect {name} shows an unexpected image:\n{summary:#}");
    }
    let raw: Value = serde_json::from_str(&crate::util::output(
        "skopeo inspect --config",
        Command::new("skopeo").args(["inspect", "--config", &name]),
    )?)
    .context("skopeo inspect --config printed no JSON")?;
    let config = &raw["config"];
    if *config != expected.runtime() {
        bail!("skopeo inspect --config {name} shows an unexpected config:\n{raw:#}");
    }
    eprintln!(
        "xtask: skopeo inspect: {name}: user {}, entrypoint {}, 2 layers",
        config["User"], config["Entrypoint"]
    );
    Ok(expected)
}

fn unpack_and_run(layout: &Path, bundle: &Path, config: &ImageConfig) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(bundle);
    let started = Instant::now();
    crate::util::output(
        "umoci unpack",
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{}", layout.display(), reference()))
            .arg(bundle),
    )?;
    eprintln!(
        "xtask: umoci unpacked it in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let rootfs = bundle.join("rootfs");
    // Found on this PATH: the child's is the image's.
    let chroot = crate::tools::which("chroot").context("chroot (coreutils) is not on PATH")?;
    for binary in BINARIES {
        let mut command = Command::new(&chroot);
        command
            .arg(format!("--userspec={}", config.user))
            .arg(&rootfs)
            .arg(format!("{BIN_DIR}/{binary}"))
            .arg("--help")
            .env_clear()
            .envs(config.env.iter().filter_map(|pair| pair.split_once('=')));
        let out = command
            .output()
            .with_context(|| format!("cannot run chroot … {binary}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("Usage:") {
            bail!(
                "{binary} --help in the image's root file system failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    eprintln!(
        "xtask: {} --help run from the image's root file system as {}",
        BINARIES.join(", "),
        config.user
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use sha2::{Digest, Sha256};

    fn config() -> ImageConfig {
        image_config().unwrap()
    }

    /// Two layers of small files: a base and "binaries" whose content is `binary`.
    fn layers(dir: &Path, binary: &[u8]) -> Vec<Layer> {
        let source = dir.join("lib.so");
        std::fs::write(&source, vec![7u8; 1000]).unwrap();
        let mut base = Layer::new("base");
        base.add("/lib/x86_64/lib.so", Content::File(source), 0o644, 0)
            .unwrap();
        base.add(
            "/etc/passwd",
            Content::Bytes(b"root:x:0:0::/:/x\n".to_vec()),
            0o644,
            0,
        )
        .unwrap();
        base.add("/tmp", Content::Dir, 0o1777, 0).unwrap();
        base.add("/home/hdi", Content::Dir, 0o755, USER_ID).unwrap();
        let mut bins = Layer::new("binaries");
        bins.add(
            "/usr/local/bin/b",
            Content::Bytes(binary.to_vec()),
            0o755,
            0,
        )
        .unwrap();
        bins.add("/usr/local/bin/a", Content::Bytes(b"a".to_vec()), 0o755, 0)
            .unwrap();
        vec![base, bins]
    }

    /// The layout of [`layers`] as `hdi:1.2.3` in `layout`.
    fn write(layout: &Path, dir: &Path, binary: &[u8]) -> Written {
        write_layout(
            layout,
            "hdi:1.2.3",
            &config(),
            &layers(dir, binary),
            Gzip::Fast,
        )
        .unwrap()
    }

    fn read_json(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn blob(layout: &Path, digest: &Value) -> Vec<u8> {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
    }

    /// `(name, type flag, mode, uid, gid, size, mtime)` of an entry of a tar.
    type Tared = (String, u8, u64, u64, u64, u64, u64);

    /// Every entry of a tar, its checksums and end checked.
    fn tar_entries(tar: &[u8]) -> Vec<Tared> {
        let field = |h: &[u8], range: std::ops::Range<usize>| -> u64 {
            let text = std::str::from_utf8(&h[range]).unwrap();
            u64::from_str_radix(text.trim_end_matches('\0').trim(), 8).unwrap()
        };
        let text = |h: &[u8]| -> String {
            String::from_utf8(h.iter().take_while(|b| **b != 0).copied().collect()).unwrap()
        };
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            let header = &tar[at..at + BLOCK];
            if header.iter().all(|b| *b == 0) {
                assert!(tar[at..].iter().all(|b| *b == 0), "data after the end");
                assert_eq!(tar.len() - at, 2 * BLOCK, "two zero blocks end it");
                break;
            }
            let stored = field(header, 148..155);
            let mut blank = header.to_vec();
            blank[148..156].fill(b' ');
            let sum: u64 = blank.iter().map(|b| u64::from(*b)).sum();
            assert_eq!(stored, sum, "checksum");
            assert_eq!(&header[257..263], b"ustar\0");
            let prefix = text(&header[345..500]);
            let name = text(&header[..100]);
            let name = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let size = field(header, 124..136);
            entries.push((
                name,
                header[156],
                field(header, 100..108),
                field(header, 108..116),
                field(header, 116..124),
                size,
                field(header, 136..148),
            ));
            at += BLOCK + (size as usize).div_ceil(BLOCK) * BLOCK;
        }
        entries
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn the_index_leads_to_a_manifest_its_config_and_layers_whose_digests_match() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let written = write(&layout, dir.path(), b"bin");
        assert_eq!(
            read_json(&layout.join("oci-layout")),
            json!({"imageLayoutVersion": "1.0.0"})
        );
        // Every blob is named by the digest of its content.
        let mut names = Vec::new();
        for file in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let file = file.unwrap();
            let hex = format!("{:x}", Sha256::digest(std::fs::read(file.path()).unwrap()));
            assert_eq!(file.file_name().to_str().unwrap(), hex);
            names.push(hex);
        }
        assert_eq!(
            names.len(),
            4,
            "two layers, a config, a manifest: {names:?}"
        );

        let index = read_json(&layout.join("index.json"));
        assert_eq!(index["mediaType"], MEDIA_INDEX);
        let descriptor = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(descriptor["annotations"][REF_NAME], "hdi:1.2.3");
        assert_eq!(descriptor["digest"], written.manifest.digest.as_str());
        let manifest_bytes = blob(&layout, &descriptor["digest"]);
        assert_eq!(descriptor["size"], manifest_bytes.len());
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(manifest["mediaType"], MEDIA_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], MEDIA_CONFIG);
        let config_bytes = blob(&layout, &manifest["config"]["digest"]);
        assert_eq!(manifest["config"]["size"], config_bytes.len());
        let image: Value = serde_json::from_slice(&config_bytes).unwrap();
        assert_eq!(image["config"]["User"], "65532:65532");
        assert_eq!(
            image["config"]["Entrypoint"],
            json!(["/usr/local/bin/hdi-control-plane"])
        );
        assert_eq!(
            image["config"]["Labels"]["org.opencontainers.image.version"],
            TAG
        );
        assert_eq!(image["os"], "linux");
        let layers = manifest["layers"].as_array().unwrap();
        let diff_ids = image["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(diff_ids.len(), 2);
        assert_eq!(image["history"].as_array().unwrap().len(), 2);
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            assert_eq!(layer["mediaType"], MEDIA_LAYER);
            let gzipped = blob(&layout, &layer["digest"]);
            assert_eq!(layer["size"], gzipped.len());
            let tar = gunzip(&gzipped);
            assert_eq!(
                diff_id.as_str().unwrap(),
                format!("sha256:{:x}", Sha256::digest(&tar))
            );
        }
    }

    #[test]
    fn tar_entries_are_sorted_parents_first_with_fixed_times_and_owners() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        write(&layout, dir.path(), b"bin");
        let index = read_json(&layout.join("index.json"));
        let manifest: Value =
            serde_json::from_slice(&blob(&layout, &index["manifests"][0]["digest"])).unwrap();
        let layer =
            |i: usize| tar_entries(&gunzip(&blob(&layout, &manifest["layers"][i]["digest"])));
        let names = |entries: &[Tared]| entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
        let base = layer(0);
        assert_eq!(
            names(&base),
            [
                "etc/",
                "etc/passwd",
                "home/",
                "home/hdi/",
                "lib/",
                "lib/x86_64/",
                "lib/x86_64/lib.so",
                "tmp/"
            ]
        );
        for (name, kind, mode, uid, gid, size, mtime) in &base {
            assert_eq!(*mtime, 0, "{name}");
            let owner = if name == "home/hdi/" { 65532 } else { 0 };
            assert_eq!((*uid, *gid), (owner, owner), "{name}");
            match name.as_str() {
                "tmp/" => assert_eq!((*kind, *mode), (b'5', 0o1777)),
                "lib/x86_64/lib.so" => assert_eq!((*kind, *mode, *size), (b'0', 0o644, 1000)),
                n if n.ends_with('/') => assert_eq!((*kind, *mode, *size), (b'5', 0o755, 0)),
                _ => assert_eq!(*kind, b'0'),
            }
        }
        assert_eq!(
            names(&layer(1)),
            [
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/a",
                "usr/local/bin/b"
            ]
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_digests_and_new_binaries_keep_the_base_layer() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let first = write(&layout, dir.path(), b"v1");
        let again = write(&layout, dir.path(), b"v1");
        assert_eq!(first.manifest, again.manifest);
        let other = dir.path().join("other");
        let changed = write(&other, dir.path(), b"v2");
        assert_ne!(changed.manifest, first.manifest);
        assert_eq!(changed.layers[0].1, first.layers[0].1, "the base layer");
        assert_ne!(changed.layers[1].1, first.layers[1].1, "the binaries");
        // Rewriting a layout removes the blobs only the earlier image used.
        write(&layout, dir.path(), b"v2");
        assert_eq!(
            std::fs::read_dir(layout.join("blobs/sha256"))
                .unwrap()
                .count(),
            4
        );
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), b"x").unwrap();
        let error = write_layout(dir.path(), "hdi:1", &config(), &[], Gzip::Fast).unwrap_err();
        assert!(error.to_string().contains("neither empty"), "{error}");
        assert!(dir.path().join("precious").exists());
    }

    #[test]
    fn long_paths_use_the_ustar_prefix_and_too_long_ones_fail() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        assert_eq!(
            split_name(&long).unwrap(),
            ("d".repeat(120).as_str(), "f".repeat(90).as_str())
        );
        let header = ustar_header(&long, b'0', 0o644, 0, 3).unwrap();
        assert_eq!(&header[..90], "f".repeat(90).as_bytes());
        assert_eq!(&header[345..465], "d".repeat(120).as_bytes());
        assert!(split_name(&"x".repeat(101)).is_err());
        assert!(split_name(&format!("{}/{}", "d".repeat(160), "f")).is_err());
        let mut field = [0u8; 4];
        assert!(octal(&mut field, 0o7777).is_err());
        octal(&mut field, 0o777).unwrap();
        assert_eq!(&field, b"777\0");
    }

    #[test]
    fn layer_paths_must_be_plain_and_parents_are_added() {
        let mut layer = Layer::new("t");
        assert!(layer.add("/a/../b", Content::Dir, 0o755, 0).is_err());
        assert!(layer.add("/a//b", Content::Dir, 0o755, 0).is_err());
        layer.add("/a/f", Content::Bytes(vec![]), 0o644, 0).unwrap();
        assert!(
            layer
                .add("/a/f/g", Content::Bytes(vec![]), 0o644, 0)
                .is_err()
        );
        layer.add("/a", Content::Dir, 0o700, 5).unwrap();
        let keys: Vec<&str> = layer.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "a/f"]);
        assert_eq!(layer.entries["a"].mode, 0o700);
    }

    #[test]
    fn ldd_output_gives_the_library_and_loader_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd1c5f2000)\n\
                    \tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f2b8e9a4000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2b8e7c3000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f2b8f6a1000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        let missing = "\tlibfoo.so.1 => not found\n";
        assert!(
            parse_ldd(missing)
                .unwrap_err()
                .to_string()
                .contains("libfoo.so.1")
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn the_reference_is_the_name_and_the_workspace_version() {
        assert_eq!(reference(), format!("hdi:{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(oci_architecture("x86_64").unwrap(), "amd64");
        assert!(oci_architecture("m68k").is_err());
    }
}
