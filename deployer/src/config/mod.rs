//! Environment configuration: `environments/defaults.yaml` layered under
//! `environments/<env>.yaml`, typed and validated.
//!
//! Loading is all-or-nothing and never panics: a bad file yields [`ConfigErrors`] naming
//! each problem's file, line and key.

pub mod de;
pub mod error;
pub mod image;
pub mod merge;
pub mod schedule;
pub mod schema;
pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

pub use error::{ConfigError, ConfigErrors, Loc, SourceFile};
pub use image::{ImageRef, logical_id};
pub use schema::*;

pub const DEFAULTS_FILE: &str = "defaults.yaml";

/// The scaler's alias: what its schedule invokes (the stack's `ScalerAlias`), moved by a
/// release and by `deployer rollback`.
pub const SCALER_ALIAS: &str = "live";

/// A loaded, validated environment.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub config: EnvironmentConfig,
    /// The files it was layered from, first to last, as given to the user.
    pub files: Vec<String>,
}

/// Names of the environments in `dir` (every `*.yaml` but `defaults.yaml`), sorted.
pub fn list_environments(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        let shown = dir.display().to_string();
        if e.kind() == std::io::ErrorKind::NotFound {
            ConfigError::file(&shown, "no environments directory here".to_string()).with_help(
                "run where your project's environments/ is, pass --environments-dir DIR (or set DEPLOYER_ENVIRONMENTS_DIR), or start a project here with `deployer init`",
            )
        } else {
            ConfigError::file(&shown, format!("cannot read the environments directory: {e}"))
                .with_help("check its permissions, or pass --environments-dir DIR")
        }
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".yaml")?;
            (name != DEFAULTS_FILE).then(|| stem.to_string())
        })
        .collect();
    names.sort();
    Ok(names)
}

fn valid_env_name(name: &str) -> bool {
    (1..=16).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Reads a file as text, refusing binary content with a clear message.
fn read_source(path: &Path) -> Result<Arc<SourceFile>, ConfigError> {
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| ConfigError::file(&shown, format!("cannot read: {e}")))?;
    if bytes.contains(&0) {
        return Err(ConfigError::file(
            &shown,
            "is a binary file (it contains NUL bytes), not YAML".to_string(),
        )
        .with_help("environment files are UTF-8 YAML text"));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::file(
            &shown,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
        .with_help("save the file as UTF-8")
    })?;
    Ok(Arc::new(SourceFile::new(shown, text)))
}

/// Loads and validates one environment from `dir`.
pub fn load(dir: &Path, env: &str) -> Result<Environment, ConfigErrors> {
    let fail = |e: ConfigError| ConfigErrors::from((env.to_string(), e));
    if !valid_env_name(env) {
        return Err(fail(
            ConfigError::file(
                &dir.join(format!("{env}.yaml")).display().to_string(),
                format!("{env:?} is not a valid environment name"),
            )
            .with_help("1 to 16 lowercase letters, digits or dashes, starting with a letter"),
        ));
    }
    let env_path: PathBuf = dir.join(format!("{env}.yaml"));
    if !env_path.is_file() {
        let known = list_environments(dir).map_err(fail)?;
        let mut e = ConfigError::file(
            &env_path.display().to_string(),
            format!("environment `{env}` does not exist"),
        );
        let new = format!(
            "a new environment is a file {}/{env}.yaml (`deployer init` writes commented examples)",
            dir.display()
        );
        e = match de::nearest(env, known.iter().map(String::as_str)) {
            Some(n) => e.with_help(format!(
                "did you mean `{n}`? environments here: {}; {new}",
                known.join(", ")
            )),
            None if known.is_empty() => e.with_help(
                "this directory has no environment files: start a project with `deployer init`, or pass --environments-dir DIR",
            ),
            None => e.with_help(format!("environments here: {}; {new}", known.join(", "))),
        };
        return Err(fail(e));
    }

    let mut files = Vec::new();
    let mut nodes = Vec::new();
    let defaults_path = dir.join(DEFAULTS_FILE);
    for path in [defaults_path.as_path(), env_path.as_path()] {
        if path == defaults_path && !path.is_file() {
            continue;
        }
        let source = read_source(path).map_err(fail)?;
        nodes.push(yaml::parse(&source).map_err(fail)?);
        files.push(source.name().to_string());
    }
    let env_file_loc = nodes.last().map_or_else(Loc::builtin, |n| Loc {
        line: 0,
        col: 0,
        offset: 0,
        len: 0,
        ..n.loc.clone()
    });
    let Some(root) = merge::layer(nodes) else {
        return Err(fail(ConfigError::file(
            &env_path.display().to_string(),
            "no configuration found".to_string(),
        )));
    };

    let config = EnvironmentConfig::deserialize(de::NodeDe::new(&root))
        .map_err(|e| fail(e.into_config_error()))?;
    let errors = validate::validate(env, &config, &root, env_file_loc);
    if !errors.is_empty() {
        return Err(ConfigErrors {
            env: env.to_string(),
            errors,
        });
    }
    Ok(Environment {
        name: env.to_string(),
        config,
        files,
    })
}

impl Environment {
    /// The CloudFormation stack of this environment.
    pub fn stack_name(&self) -> String {
        format!("{}-{}", self.config.project, self.name)
    }

    /// The per-account, per-region bootstrap stack (artifact bucket, image repository).
    pub fn bootstrap_stack_name(&self) -> String {
        format!("{}-bootstrap", self.config.project)
    }

    /// The router's image repository, created by the bootstrap stack.
    pub fn ecr_repository(&self) -> String {
        format!("{}/router", self.config.project)
    }

    /// The ECS cluster: the stack's name.
    pub fn cluster_name(&self) -> String {
        self.stack_name()
    }

    /// The router's ECS service (and task definition family).
    pub fn router_service_name(&self) -> String {
        format!("{}-router", self.stack_name())
    }

    /// The Secrets Manager secret with the router's S3 key pair.
    pub fn router_credentials_secret(&self) -> String {
        format!("{}/router-credentials", self.stack_name())
    }

    pub fn ssm_parameter_name(&self) -> String {
        self.config
            .ssm_parameter_name
            .clone()
            .unwrap_or_else(|| format!("/{}/{}/mount-targets", self.config.project, self.name))
    }

    /// Zones that get a mount target with the stack: configured, or the first two.
    pub fn initial_mount_target_azs(&self) -> Vec<String> {
        match &self.config.efs.initial_mount_target_azs {
            Some(list) => list.clone(),
            None => self
                .config
                .availability_zones
                .iter()
                .take(2)
                .map(|z| z.name.clone())
                .collect(),
        }
    }

    pub fn max_mount_targets(&self) -> u32 {
        self.config
            .scaler
            .max_mount_targets
            .unwrap_or(self.config.availability_zones.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load_text(dir: &Path, text: &[u8]) -> Result<Environment, ConfigErrors> {
        std::fs::write(dir.join("x.yaml"), text).unwrap();
        load(dir, "x")
    }

    #[test]
    fn every_shipped_environment_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments");
        let names = list_environments(&dir).unwrap();
        assert_eq!(names, ["dev", "local", "prod", "staging"]);
        for name in names {
            let env = load(&dir, &name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(env.files.len(), 2);
        }
    }

    #[test]
    fn null_restores_the_builtin_default() {
        let dir = tempfile::tempdir().unwrap();
        let envs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../environments");
        std::fs::copy(envs.join(DEFAULTS_FILE), dir.path().join(DEFAULTS_FILE)).unwrap();
        let env = load_text(dir.path(), b"account_id: \"111122223333\"\n").unwrap();
        assert_eq!(
            env.config.efs.transition_to_ia_days,
            Some(30),
            "defaults.yaml sets 30"
        );
        let env = load_text(
            dir.path(),
            b"account_id: \"111122223333\"\nefs:\n  transition_to_ia_days: null\n",
        )
        .unwrap();
        assert_eq!(
            env.config.efs.transition_to_ia_days, None,
            "null means never"
        );
    }

    #[test]
    fn environment_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "Prod",
            "a--b",
            "dev-",
            "",
            "0dev",
            "a-very-long-environment-name",
        ] {
            assert!(load(dir.path(), bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Never a panic: arbitrary bytes, and arbitrary YAML-ish text built from the
        /// characters YAML cares about, end in Ok or in errors.
        #[test]
        fn arbitrary_input_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            text in "[a-z_:0-9 \\-\\[\\]{}&*!|>'\"#\n.,/é]{0,200}",
        ) {
            let dir = tempfile::tempdir().unwrap();
            let _ = load_text(dir.path(), &bytes);
            let _ = load_text(dir.path(), text.as_bytes());
            let _ = load_text(dir.path(), format!("account_id: \"111122223333\"\nregion: ap-northeast-1\n{text}").as_bytes());
        }
    }
}
