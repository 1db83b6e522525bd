//! `collector-image`: packs a built collector binary into `collector:<tag>` as an OCI archive.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use collector::image::{build, shared_libraries, ImageSpec, Kind};

/// Build an OCI image archive (OCI layout + docker-save manifest.json) without Docker.
#[derive(Parser)]
#[command(name = "collector-image")]
struct Args {
    /// The collector binary to pack (a musl static build needs no libraries copied).
    #[arg(long)]
    binary: PathBuf,
    /// Image name.
    #[arg(long, default_value = "collector")]
    name: String,
    /// Image tag.
    #[arg(long, default_value = "latest")]
    tag: String,
    /// Output archive; default `<name>-<tag>.oci.tar`.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Pack `--binary` as a busybox image (applet links, `sh` as its command) instead.
    #[arg(long)]
    busybox: bool,
    /// Pack `--binary` as `/<name>`, its entrypoint (another program, e.g. victoria-metrics).
    #[arg(long, conflicts_with = "busybox")]
    tool: bool,
    /// File and config timestamp (seconds since epoch); SOURCE_DATE_EPOCH if set, else 0.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    mtime: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.oci.tar", args.name, args.tag)));
    let libs = shared_libraries(&args.binary).context("inspecting binary")?;
    let spec = ImageSpec {
        kind: if args.busybox {
            Kind::Busybox
        } else if args.tool {
            Kind::Tool
        } else {
            Kind::Collector
        },
        binary: args.binary,
        name: args.name.clone(),
        tag: args.tag.clone(),
        mtime: args.mtime,
    };
    let digest = build(&spec, &output).with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{}:{} {} -> {} ({} shared libraries copied)",
        args.name,
        args.tag,
        digest,
        output.display(),
        libs.len()
    );
    Ok(())
}
