//! `skiff image load|pull|ls|rm`: the node's local image store, filled from archives or
//! registries (as `crictl pull` does for a kubelet's runtime).

use anyhow::Context;
use skiff_node::image::{ImageStore, Puller, RegistryConfig};
use std::path::PathBuf;

/// `skiff image ...`.
#[derive(clap::Args)]
pub struct ImageArgs {
    /// Data dir of the server whose node runs the images.
    #[arg(
        long,
        env = "SKIFF_DATA_DIR",
        default_value = "./skiff-data",
        global = true
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Load a `docker save` or OCI archive (gzip'd or not); `-` reads standard input.
    Load {
        /// Archive path, or `-`.
        file: String,
    },
    /// Pull an image from its registry (HTTPS; plain HTTP for loopback registries and
    /// those in SKIFF_INSECURE_REGISTRIES), like `crictl pull`.
    Pull {
        /// Reference (`busybox`, `127.0.0.1:5000/app:v1`, `app@sha256:...`).
        reference: String,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Remove an image by reference or id.
    #[command(alias = "remove")]
    Rm {
        /// Reference (`busybox:1.36`) or id (`sha256:...` or a unique prefix).
        reference: String,
    },
}

/// Runs an image subcommand; prints results on stdout.
pub fn run(args: ImageArgs) -> anyhow::Result<()> {
    let root = args.data_dir.join("images");
    let store =
        ImageStore::open(&root).with_context(|| format!("opening images in {}", root.display()))?;
    match args.command {
        ImageCommand::Load { file } => {
            let records = if file == "-" {
                store.load(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(&file).with_context(|| format!("opening {file}"))?;
                store.load(std::io::BufReader::new(f))
            }
            .with_context(|| format!("loading {file}"))?;
            for r in records {
                println!("Loaded image: {} ({})", r.name, short_id(&r.id));
            }
        }
        ImageCommand::Pull { reference } => {
            let pulled = pull(&store, &reference)?;
            println!(
                "Image is up to date for {} ({}, {} downloaded in {:.1}s)",
                pulled.record.image_ref(),
                short_id(&pulled.record.id),
                human_size(pulled.downloaded),
                pulled.duration.as_secs_f64()
            );
        }
        ImageCommand::Ls => {
            println!("{:<50} {:<14} {:>10}", "IMAGE", "ID", "SIZE");
            for r in store.list()? {
                println!(
                    "{:<50} {:<14} {:>10}",
                    r.name,
                    short_id(&r.id),
                    human_size(r.size)
                );
            }
        }
        ImageCommand::Rm { reference } => {
            let r = store.remove(&reference)?;
            println!("Deleted: {} ({})", r.name, short_id(&r.id));
        }
    }
    Ok(())
}

/// Pulls on a runtime of its own on a separate thread: this command runs synchronously
/// inside the binary's runtime, where blocking on another future would panic.
fn pull(store: &ImageStore, reference: &str) -> anyhow::Result<skiff_node::image::Pulled> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime for the pull")?;
            rt.block_on(async {
                let puller = Puller::new(RegistryConfig::from_env())?;
                puller.pull(store, reference, None).await
            })
            .with_context(|| format!("pulling {reference}"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the pull thread panicked"))?
    })
}

fn short_id(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}kB", b as f64 / (1u64 << 10) as f64),
        b => format!("{b}B"),
    }
}
