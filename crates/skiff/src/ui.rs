//! `skiff ui`: wiring only. Reads the kubeconfig as kubectl does and hands the client to
//! `skiff-ui`, which serves the page on loopback (decision 0032).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct UiArgs {
    /// Open the page in the desktop's browser (`xdg-open`).
    #[arg(long)]
    open: bool,
    /// The port on 127.0.0.1 (0, the default, picks a free one; the URL is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The kubeconfig whose current context and credentials the view uses (default: as
    /// kubectl, $KUBECONFIG, else ~/.kube/config). RBAC decides what it shows.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

pub async fn run(args: UiArgs) -> anyhow::Result<()> {
    // kube's TLS client needs a process-wide crypto provider; ignore "already installed".
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = kube::config::KubeConfigOptions::default();
    let (config, kubeconfig) = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
                .await
                .with_context(|| format!("using {}", path.display()))?;
            (config, Some(kubeconfig))
        }
        None => (
            kube::Config::infer()
                .await
                .context("no kubeconfig (pass --kubeconfig)")?,
            kube::config::Kubeconfig::read().ok(),
        ),
    };
    let user = kubeconfig
        .as_ref()
        .and_then(|k| {
            let current = k.current_context.as_deref()?;
            let context = k.contexts.iter().find(|c| c.name == current)?;
            context.context.as_ref()?.user.clone()
        })
        .unwrap_or_else(|| "the kubeconfig's user".to_owned());
    let namespace = config.default_namespace.clone();
    let context = format!(
        "{} as {user}, default namespace {namespace}",
        config.cluster_url
    );
    let client = kube::Client::try_from(config)?;
    let open = args.open;
    skiff_ui::serve(
        client,
        skiff_ui::Options {
            port: args.port,
            namespace,
            context,
        },
        |url| {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "skiff ui: serving {url}");
            let _ = out.flush();
            if open {
                if let Err(e) = std::process::Command::new("xdg-open").arg(url).spawn() {
                    eprintln!("skiff ui: cannot open a browser ({e}); open the URL above");
                }
            }
        },
        super::shutdown_signal(),
    )
    .await?;
    Ok(())
}
