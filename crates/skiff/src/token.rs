//! `skiff token create`: a bootstrap token for a new node, as `kubeadm token create`
//! (decision 0044). `skiff agent` given it asks for its own client certificate and uses
//! that from then on; the token is needed once and expires (24 h by default).

use std::path::PathBuf;

use anyhow::Context;
use skiff_auth::bootstrap;

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Create a bootstrap token and print it (`<id>.<secret>`), for `skiff agent
    /// --token-file`.
    Create(CreateArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// The server's data dir, whose admin kubeconfig creates the token.
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "./skiff-data")]
    data_dir: PathBuf,
    /// A kubeconfig to create it with instead of the data dir's.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long the token may be used, a Go duration; 0s never expires (kubeadm's --ttl).
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// What the token is for, kept in its Secret.
    #[arg(long, default_value = "")]
    description: String,
    /// Extra groups of the token's user, each `system:bootstrappers:...` (kubeadm's
    /// --groups).
    #[arg(long = "groups", value_delimiter = ',')]
    groups: Vec<String>,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Create(args) => create(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let ttl = skiff_apiserver::request::parse_go_duration(&args.ttl).with_context(|| {
        format!(
            "--ttl {:?} is not a duration such as 24h (0s never expires)",
            args.ttl
        )
    })?;
    if let Some(bad) = args
        .groups
        .iter()
        .find(|g| !bootstrap::valid_extra_group(g))
    {
        anyhow::bail!(
            "--groups {bad:?} must match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"
        );
    }
    let expiration = if ttl.is_zero() {
        None
    } else {
        Some(
            bootstrap::expiration(std::time::SystemTime::now(), ttl)
                .context("--ttl is too long")?,
        )
    };
    let token = bootstrap::generate()?;
    let parsed = bootstrap::parse(&token).context("a generated token parses")?;
    let data = bootstrap::secret_data(
        parsed,
        &args.description,
        expiration.as_deref(),
        &args.groups,
    );
    let secret = k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(parsed.secret_name()),
            namespace: Some(bootstrap::NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some(bootstrap::SECRET_TYPE.into()),
        string_data: Some(data),
        ..Default::default()
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = args
        .kubeconfig
        .unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("reading {} (or pass --kubeconfig)", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client, bootstrap::NAMESPACE)
        .create(&Default::default(), &secret)
        .await
        .context("creating the bootstrap token's Secret")?;
    println!("{token}");
    Ok(())
}
