//! `collector-image`: packs a built collector binary into `collector:<tag>` as an OCI archive.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use collector::image::{build, shared_libraries, ImageSpec, Kind, Tool};

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
    /// Pack `--binary` at its own path as the entrypoint: another program (victoria-metrics,
    /// redis-server, postgres), with what `--add` names.
    #[arg(long, conflicts_with = "busybox")]
    tool: bool,
    /// `HOST_PATH[:IMAGE_PATH]`, a file or directory a tool image also holds (repeatable).
    #[arg(long, requires = "tool")]
    add: Vec<String>,
    /// A tool image's entrypoint, when it is not `--binary`.
    #[arg(long, requires = "tool")]
    entrypoint: Option<String>,
    /// An argument of a tool image's `Cmd` (repeatable).
    #[arg(long = "cmd", requires = "tool", allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// `NAME=value` in a tool image's environment (repeatable).
    #[arg(long, requires = "tool")]
    env: Vec<String>,
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
            Kind::Tool(Tool {
                add: args
                    .add
                    .iter()
                    .map(|a| match a.split_once(':') {
                        Some((src, dest)) => (PathBuf::from(src), dest.to_string()),
                        None => (PathBuf::from(a), a.clone()),
                    })
                    .collect(),
                entrypoint: args.entrypoint,
                cmd: args.cmd,
                env: args.env,
            })
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
