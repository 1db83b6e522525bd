//! `skiff compose convert|up|down -f FILE`: wiring only. `skiff-compose` turns the Compose
//! file into manifests as kompose does; `up` server-side applies them (field manager
//! `skiff-compose`) to the current kubeconfig's cluster, `down` deletes them (decision
//! 0040).

use std::path::{Path, PathBuf};

use anyhow::Context;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

/// The field manager of `skiff compose up`'s applies.
const FIELD_MANAGER: &str = "skiff-compose";

#[derive(clap::Args)]
pub struct ComposeArgs {
    #[command(subcommand)]
    command: ComposeCommand,
}

#[derive(clap::Subcommand)]
enum ComposeCommand {
    /// Print the Kubernetes manifests of a Compose file (YAML, `---` separated).
    Convert(FileArgs),
    /// Apply the manifests to the current kubeconfig's cluster (server-side apply).
    Up(ClusterArgs),
    /// Delete what `up` created, volumes' claims included (as `kompose down`).
    Down(ClusterArgs),
}

#[derive(clap::Args)]
struct FileArgs {
    /// The Compose file.
    #[arg(short = 'f', long = "file", default_value = "compose.yaml")]
    file: PathBuf,
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(flatten)]
    file: FileArgs,
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

/// Reads and converts the file; warnings go to stderr, as kompose's `WARN` lines.
fn load(path: &Path) -> anyhow::Result<skiff_compose::Conversion> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let conversion = skiff_compose::convert(&text, &|env_file| {
        std::fs::read_to_string(dir.join(env_file))
    })
    .with_context(|| format!("converting {}", path.display()))?;
    for warning in &conversion.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(conversion)
}

/// The object's API, from its apiVersion and kind (only the kinds the conversion makes).
fn api(
    client: &kube::Client,
    namespace: &str,
    object: &serde_json::Value,
) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Deployment" => "deployments",
        "Service" => "services",
        "PersistentVolumeClaim" => "persistentvolumeclaims",
        "ConfigMap" => "configmaps",
        "Pod" => "pods",
        other => anyhow::bail!("unexpected kind {other}"),
    };
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((
        Api::namespaced_with(client.clone(), namespace, &resource),
        format!("{}/{name}", plural),
    ))
}

pub async fn run(args: ComposeArgs) -> anyhow::Result<()> {
    let (cluster, up) = match args.command {
        ComposeCommand::Convert(f) => {
            print!("{}", load(&f.file)?.to_yaml());
            return Ok(());
        }
        ComposeCommand::Up(c) => (c, true),
        ComposeCommand::Down(c) => (c, false),
    };
    let conversion = load(&cluster.file.file)?;
    // kube's TLS client needs a process-wide crypto provider; ignore "already installed".
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer().await.context("no kubeconfig")?;
    let namespace = cluster
        .namespace
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    if up {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for object in &conversion.objects {
            let (api, shown) = api(&client, &namespace, object)?;
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            api.patch(name, &params, &Patch::Apply(object))
                .await
                .with_context(|| format!("applying {shown}"))?;
            println!("{shown} applied");
        }
    } else {
        // Dependents first: workloads before the claims and ConfigMaps they use.
        for object in conversion.objects.iter().rev() {
            let (api, shown) = api(&client, &namespace, object)?;
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => println!("{shown} deleted"),
                Err(kube::Error::Api(s)) if s.code == 404 => println!("{shown} not found"),
                Err(e) => return Err(e).with_context(|| format!("deleting {shown}")),
            }
        }
    }
    Ok(())
}
