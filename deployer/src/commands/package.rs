//! `deployer package --env NAME [--out DIR] [--no-upload]`: builds the runtime, makes
//! the Lambda zip and the router image, and uploads what the account does not have yet.
//! Writes `artifacts.json` with the stack parameters that pin them (bucket, key, image
//! digest), for `deployer up` and for anyone deploying the template by other means.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use miette::{IntoDiagnostic, WrapErr, miette};
use serde_json::json;

use crate::aws::{ecr, s3};
use crate::cli::{AwsArgs, OutputFormat, PackageArgs};
use crate::commands::bootstrap::{self, Bootstrap};
use crate::config::{self, Environment};
use crate::package::build::Workspace;
use crate::package::push::{Destination, Registry};
use crate::package::{self, Artifacts};
use crate::progress::Progress;

/// Overrides the registry the image is pushed to (`http://127.0.0.1:5001` for a local
/// registry; plain HTTP is accepted only for loopback addresses). The stack still
/// references the bootstrap repository by digest.
pub const REGISTRY_ENV: &str = "DEPLOYER_REGISTRY_URL";

pub fn run(
    environments_dir: &Path,
    aws_args: &AwsArgs,
    output: OutputFormat,
    args: &PackageArgs,
) -> miette::Result<ExitCode> {
    let env = config::load(environments_dir, &args.env)?;
    let progress = Progress::stderr();
    let packaged = super::block_on(async {
        // The bootstrap stack first: finding it missing after minutes of building would
        // waste them.
        let clients = if args.no_upload {
            None
        } else {
            let sdk = super::connect(&env, aws_args).await?;
            let cfn = aws_sdk_cloudformation::Client::new(&sdk);
            let bootstrap = bootstrap::outputs(&cfn, &env).await?;
            Some((sdk, bootstrap))
        };
        build_and_upload(
            &env,
            clients.as_ref().map(|(sdk, b)| (sdk, b)),
            args.out.as_deref(),
            &progress,
        )
        .await
    })??;
    match output {
        OutputFormat::Text => {
            for line in packaged.summary() {
                println!("{line}");
            }
        }
        // What was written to artifacts.json: what a pipeline reads to deploy it.
        OutputFormat::Json => {
            let manifest = std::fs::read_to_string(&packaged.manifest)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", packaged.manifest.display()))?;
            println!("{}", manifest.trim_end());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `package` built and, given clients, uploaded.
#[derive(Debug)]
pub struct Packaged {
    pub artifacts: Artifacts,
    pub bootstrap: Option<Bootstrap>,
    uploaded: Option<Uploaded>,
    /// Where artifacts.json was written.
    pub manifest: PathBuf,
}

impl Packaged {
    /// The image reference the stack pins: the bootstrap repository, by digest.
    pub fn image(&self) -> Option<String> {
        self.bootstrap.as_ref().map(|b| {
            format!(
                "{}@{}",
                b.repository_uri, self.artifacts.image.manifest.digest
            )
        })
    }

    /// The environment stack's parameters that pin the artifacts; None before upload.
    pub fn parameters(&self) -> Option<Vec<(String, String)>> {
        let bootstrap = self.bootstrap.as_ref()?;
        Some(vec![
            ("ScalerCodeBucket".into(), bootstrap.bucket.clone()),
            ("ScalerCodeKey".into(), self.artifacts.zip.key()),
            ("RouterImage".into(), self.image()?),
        ])
    }

    /// One line per artifact: size, and whether it was uploaded or already there.
    pub fn summary(&self) -> Vec<String> {
        summary(
            &self.artifacts,
            self.image().as_deref(),
            self.uploaded.as_ref(),
            &self.manifest,
        )
    }
}

/// Checks the toolchains, builds, writes `out` when given, uploads what `upload`'s
/// account lacks, and writes artifacts.json (only after every upload succeeded, so it
/// never names an artifact the account does not hold).
pub async fn build_and_upload(
    env: &Environment,
    upload_to: Option<(&aws_config::SdkConfig, &Bootstrap)>,
    out: Option<&Path>,
    progress: &Progress,
) -> miette::Result<Packaged> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let registry_override = registry_override()?;
    // A source checkout builds from its tree (development); anywhere else the artifacts
    // this deployer carries are the ones (a self-contained release binary).
    let (artifacts, home) = match Workspace::locate(&cwd) {
        Ok(workspace) => {
            let toolchains = package::toolchains(env)?;
            let artifacts = tokio::task::block_in_place(|| {
                package::package(env, &workspace, &toolchains, progress)
            })?;
            eprintln!(
                "artifacts: built from the source tree at {} (revision {})",
                workspace.root.display(),
                artifacts.revision
            );
            (artifacts, workspace.root)
        }
        Err(outside) => {
            let carried = package::bundle::carried()?.ok_or_else(|| {
                miette::Report::new(outside).wrap_err(
                    "this deployer carries no runtime artifacts and is not in a source checkout to build them from",
                )
            })?;
            let artifacts = carried.artifacts(env).ok_or_else(|| {
                miette::miette!(
                    "this deployer carries no artifacts for {}",
                    env.config.scaler.architecture.name()
                )
            })?;
            eprintln!(
                "artifacts: carried by this deployer (version {}, revision {})",
                carried.manifest.version, carried.manifest.revision
            );
            (artifacts, cwd.clone())
        }
    };
    if let Some(out) = out {
        artifacts.write_to(out)?;
    }
    let uploaded = match upload_to {
        None => None,
        Some((sdk, bootstrap)) => Some(
            upload(
                sdk,
                bootstrap,
                env.config.account_id.as_deref(),
                &artifacts,
                registry_override.as_ref(),
                progress,
            )
            .await?,
        ),
    };
    let dir = out.map_or_else(|| home.join(".deployer").join(&env.name), Path::to_path_buf);
    let packaged = Packaged {
        artifacts,
        bootstrap: upload_to.map(|(_, b)| b.clone()),
        uploaded,
        manifest: dir.join("artifacts.json"),
    };
    let text = artifacts_json(
        env,
        &packaged.artifacts,
        packaged.bootstrap.as_ref(),
        packaged.image().as_deref(),
    );
    crate::files::write_atomic(&packaged.manifest, text.as_bytes())
        .into_diagnostic()
        .wrap_err_with(|| format!("cannot write {}", packaged.manifest.display()))?;
    Ok(packaged)
}

/// What an upload did.
#[derive(Debug)]
struct Uploaded {
    /// Whether the zip was put (false: the bucket had it).
    zip: bool,
    /// None when the repository had the image already.
    image: Option<Pushed>,
}

#[derive(Debug)]
struct Pushed {
    blobs_uploaded: usize,
    bytes_uploaded: usize,
    blobs_present: usize,
}

/// Finds what the account lacks, then uploads only that: the zip to S3, the image's
/// missing blobs and then its manifest to the registry. Checking everything first gives
/// the progress bar its total.
async fn upload(
    sdk: &aws_config::SdkConfig,
    bootstrap: &Bootstrap,
    account: Option<&str>,
    artifacts: &Artifacts,
    registry_override: Option<&(String, bool)>,
    progress: &Progress,
) -> miette::Result<Uploaded> {
    let s3 = s3::client(sdk);
    let key = artifacts.zip.key();
    let bucket = s3::Bucket {
        name: &bootstrap.bucket,
        owner: account,
    };
    let put_zip = !s3::holds(&s3, &bucket, &key, &artifacts.zip.sha256_base64()).await?;
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let image = &artifacts.image;
    let registry = if registry_override.is_none()
        && ecr::image_exists(&ecr, &bootstrap.repository, &image.manifest.digest).await?
    {
        None
    } else {
        Some(connect_registry(&ecr, bootstrap, registry_override).await?)
    };
    let blobs = match &registry {
        Some(registry) => registry.missing(image).await?,
        None => Vec::new(),
    };
    let total = if put_zip {
        artifacts.zip.bytes.len()
    } else {
        0
    } + blobs.iter().map(|b| b.bytes.len()).sum::<usize>()
        + if registry.is_some() {
            image.manifest.bytes.len()
        } else {
            0
        };
    let bar = progress.bytes("uploading", total as u64);
    if put_zip {
        s3::put(
            &s3,
            &bucket,
            &key,
            artifacts.zip.bytes.clone(),
            &artifacts.zip.sha256_base64(),
            "application/zip",
        )
        .await?;
        bar.inc(artifacts.zip.bytes.len() as u64);
    }
    let pushed = match &registry {
        None => None,
        Some(registry) => {
            for blob in &blobs {
                registry.upload(image, blob).await?;
                bar.inc(blob.bytes.len() as u64);
            }
            registry.tag(image, &artifacts.image_tag()).await?;
            bar.inc(image.manifest.bytes.len() as u64);
            Some(Pushed {
                blobs_uploaded: blobs.len(),
                bytes_uploaded: blobs.iter().map(|b| b.bytes.len()).sum(),
                blobs_present: image.blobs().len() - blobs.len(),
            })
        }
    };
    bar.finish_and_clear();
    Ok(Uploaded {
        zip: put_zip,
        image: pushed,
    })
}

/// The bootstrap repository's registry (or `DEPLOYER_REGISTRY_URL`'s), logged in with
/// ECR's token.
async fn connect_registry(
    ecr: &aws_sdk_ecr::Client,
    bootstrap: &Bootstrap,
    registry_override: Option<&(String, bool)>,
) -> miette::Result<Registry> {
    let login = ecr::login(ecr).await?;
    let (registry, insecure) = match registry_override {
        Some((registry, insecure)) => (registry.clone(), *insecure),
        None => (
            login
                .endpoint
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string(),
            false,
        ),
    };
    Ok(Registry::connect(Destination {
        registry,
        repository: bootstrap.repository.clone(),
        username: login.username.clone(),
        password: login.password.clone(),
        insecure,
    })
    .await)
}

/// The tag an environment's deployed image carries: the repository's lifecycle policy
/// never expires an image with one, so a running environment's next task start can
/// always pull what its stack pins, whatever other environments push meanwhile.
pub fn deployed_tag(env: &Environment) -> String {
    format!(
        "{}{}",
        crate::render::context::DEPLOYED_TAG_PREFIX,
        env.name
    )
}

/// Tags the image `packaged` pinned as the environment's deployed one (moving the tag
/// from the image deployed before, which the lifecycle may then expire).
pub async fn mark_deployed(
    sdk: &aws_config::SdkConfig,
    env: &Environment,
    packaged: &Packaged,
) -> miette::Result<()> {
    let Some(bootstrap) = &packaged.bootstrap else {
        return Ok(());
    };
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let tag = deployed_tag(env);
    let registry_override = registry_override()?;
    let digest = &packaged.artifacts.image.manifest.digest;
    // Already tagged (an `up` with nothing new): no write.
    if registry_override.is_none()
        && ecr::image_tags(&ecr, &bootstrap.repository, digest)
            .await?
            .is_some_and(|tags| tags.contains(&tag))
    {
        return Ok(());
    }
    let registry = connect_registry(&ecr, bootstrap, registry_override.as_ref()).await?;
    registry.tag(&packaged.artifacts.image, &tag).await?;
    eprintln!(
        "router: {}@{} tagged {tag} (kept by the repository's lifecycle)",
        bootstrap.repository, packaged.artifacts.image.manifest.digest
    );
    Ok(())
}

/// `DEPLOYER_REGISTRY_URL` as (host[:port], plain HTTP allowed).
fn registry_override() -> miette::Result<Option<(String, bool)>> {
    let Ok(url) = std::env::var(REGISTRY_ENV) else {
        return Ok(None);
    };
    registry_url(&url)
        .map(Some)
        .map_err(|why| miette!("{REGISTRY_ENV}={url:?}: {why}"))
}

/// A registry URL as (host[:port], plain HTTP allowed). Plain HTTP only to a loopback
/// address, decided on the parsed host (an IP literal, or exactly `localhost`), never
/// on a prefix of the text: `http://localhost.example.com` would carry the registry
/// token in clear across the network.
fn registry_url(url: &str) -> Result<(String, bool), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be a URL such as https://registry.example.com or http://127.0.0.1:5001")?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return Err("must be scheme://host[:port], without a path, user or query".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?,
        None => authority
            .rsplit_once(':')
            .map_or((authority, ""), |(h, p)| (h, p)),
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{port:?} is not a port"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok((authority.to_string(), false)),
        "http" if loopback => Ok((authority.to_string(), true)),
        _ => Err(
            "only https, or http to a loopback address, is allowed; image pushes carry credentials"
                .into(),
        ),
    }
}

fn artifacts_json(
    env: &Environment,
    a: &Artifacts,
    bootstrap: Option<&Bootstrap>,
    image: Option<&str>,
) -> String {
    let value = json!({
        "environment": env.name,
        "revision": a.revision,
        "scaler": {
            "architecture": a.scaler_architecture,
            "sha256": a.zip.sha256(),
            "size": a.zip.bytes.len(),
            "bucket": bootstrap.map(|b| b.bucket.clone()),
            "key": a.zip.key(),
        },
        "router": {
            "architecture": a.router_architecture,
            "digest": a.image.manifest.digest,
            "size": a.image.size(),
            "tag": a.image_tag(),
            "image": image,
        },
        // CloudFormation parameters of the environment's stack; null until uploaded.
        "parameters": {
            "ScalerCodeBucket": bootstrap.map(|b| b.bucket.clone()),
            "ScalerCodeKey": a.zip.key(),
            "RouterImage": image,
        },
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn summary(
    a: &Artifacts,
    image: Option<&str>,
    uploaded: Option<&Uploaded>,
    manifest: &Path,
) -> Vec<String> {
    let mib = |n: usize| n as f64 / (1024.0 * 1024.0);
    let zip_state = match uploaded {
        None => "not uploaded (--no-upload)".to_string(),
        Some(u) if u.zip => "uploaded".to_string(),
        Some(_) => "already uploaded".to_string(),
    };
    let image_state = match uploaded.map(|u| &u.image) {
        None => "not pushed (--no-upload)".to_string(),
        Some(None) => "already in the repository".to_string(),
        Some(Some(p)) => format!(
            "pushed: {} blob(s), {:.1} MiB uploaded, {} already there",
            p.blobs_uploaded,
            mib(p.bytes_uploaded),
            p.blobs_present
        ),
    };
    let scaler = format!(
        "scaler: {} ({:.1} MiB zip, {}) {zip_state}",
        a.zip.key(),
        mib(a.zip.bytes.len()),
        a.scaler_architecture.name()
    );
    let location = image.map_or_else(
        || format!("<repository>@{}", a.image.manifest.digest),
        str::to_string,
    );
    let router = format!(
        "router: {location} ({:.1} MiB, {}) {image_state}",
        mib(a.image.size()),
        package::oci_architecture(a.router_architecture)
    );
    vec![scaler, router, format!("artifacts: {}", manifest.display())]
}

#[cfg(test)]
mod registry_tests {
    use super::registry_url;

    #[test]
    fn plain_http_only_to_a_loopback_host() {
        assert_eq!(
            registry_url("http://127.0.0.1:5001/"),
            Ok(("127.0.0.1:5001".into(), true))
        );
        assert_eq!(
            registry_url("http://localhost:5000"),
            Ok(("localhost:5000".into(), true))
        );
        assert_eq!(
            registry_url("http://[::1]:5000"),
            Ok(("[::1]:5000".into(), true))
        );
        assert_eq!(
            registry_url("https://registry.example.com"),
            Ok(("registry.example.com".into(), false))
        );
        for bad in [
            "http://localhost.example.com",
            "http://127.example.com:5000",
            "http://[::1].example.com",
            "http://localhost@evil.example.com",
            "http://10.0.0.5:5000",
            "ftp://127.0.0.1",
            "127.0.0.1:5000",
            "https://",
        ] {
            assert!(registry_url(bad).is_err(), "{bad} was accepted");
        }
    }
}
