//! Offline rendering of the CloudFormation templates from `templates/`.
//!
//! The templates are compiled into the binary, so `deployer` renders the same bytes
//! wherever it runs. Handlebars runs in strict mode (a misspelt variable is an error, not
//! an empty string) without HTML escaping; values are written through the `json` helper.

pub mod context;

use handlebars::{
    Context as HbContext, Handlebars, Helper, HelperDef, JsonRender, RenderContext, RenderError,
    RenderErrorReason, ScopedJson, handlebars_helper,
};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::config::Environment;
pub use context::{BootstrapContext, Context};

/// Templates, compiled in: (name, path under `templates/`, text). Partials are named
/// after their file.
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "main",
        "main.yaml.hbs",
        include_str!("../../../templates/main.yaml.hbs"),
    ),
    (
        "bootstrap",
        "bootstrap.yaml.hbs",
        include_str!("../../../templates/bootstrap.yaml.hbs"),
    ),
    (
        "network",
        "partials/network.yaml.hbs",
        include_str!("../../../templates/partials/network.yaml.hbs"),
    ),
    (
        "storage",
        "partials/storage.yaml.hbs",
        include_str!("../../../templates/partials/storage.yaml.hbs"),
    ),
    (
        "scaler",
        "partials/scaler.yaml.hbs",
        include_str!("../../../templates/partials/scaler.yaml.hbs"),
    ),
    (
        "scaler_function",
        "partials/scaler-function.yaml.hbs",
        include_str!("../../../templates/partials/scaler-function.yaml.hbs"),
    ),
    (
        "service",
        "partials/service.yaml.hbs",
        include_str!("../../../templates/partials/service.yaml.hbs"),
    ),
    (
        "monitoring",
        "partials/monitoring.yaml.hbs",
        include_str!("../../../templates/partials/monitoring.yaml.hbs"),
    ),
];

/// File names written by `render --out`.
pub const MAIN_FILE: &str = "main.yaml";
pub const BOOTSTRAP_FILE: &str = "bootstrap.yaml";
pub const CONFIG_FILE: &str = "resolved-config.json";

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    #[error("template `{name}` failed to render: {reason}")]
    #[diagnostic(
        code(deployer::render),
        help("this is a bug in templates/ or the render context; please report it")
    )]
    Template { name: String, reason: String },
    #[error("template `{name}` rendered invalid YAML at line {line}: {reason}")]
    #[diagnostic(
        code(deployer::render),
        help("this is a bug in templates/; render with --out and look at that line")
    )]
    InvalidYaml {
        name: String,
        line: usize,
        reason: String,
    },
}

/// The rendered output of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub main: String,
    pub bootstrap: String,
    /// The resolved configuration (all layers and defaults applied), as stable JSON.
    pub config: String,
}

impl Rendered {
    /// `(file name, contents)` in a fixed order.
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            (MAIN_FILE, &self.main),
            (BOOTSTRAP_FILE, &self.bootstrap),
            (CONFIG_FILE, &self.config),
        ]
    }
}

/// Renders every template of an environment.
#[derive(Debug)]
pub struct Renderer {
    registry: Handlebars<'static>,
}

impl Renderer {
    /// The compiled-in templates.
    pub fn new() -> Result<Self, Error> {
        Self::with_sources(
            TEMPLATES
                .iter()
                .map(|(name, _, text)| (*name, (*text).to_string())),
        )
    }

    /// The templates in `dir` (a `templates/` directory of any revision), read from the
    /// same file names as the compiled-in ones.
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let mut sources = Vec::new();
        for (name, file, _) in TEMPLATES {
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Template {
                name: (*name).to_string(),
                reason: format!("cannot read {}: {e}", path.display()),
            })?;
            sources.push((*name, text));
        }
        Self::with_sources(sources.into_iter())
    }

    fn with_sources(sources: impl Iterator<Item = (&'static str, String)>) -> Result<Self, Error> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("json", Box::new(json_helper));
        registry.register_helper("concat", Box::new(concat_helper));
        registry.register_helper("tags", Box::new(TagsHelper));
        for (name, text) in sources {
            registry
                .register_template_string(name, text)
                .map_err(|e| Error::Template {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Renderer { registry })
    }

    fn render_one<T: Serialize>(&self, name: &str, data: &T) -> Result<String, Error> {
        let text = self
            .registry
            .render(name, data)
            .map_err(|e| Error::Template {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        let text = tidy(&text);
        check_yaml(name, &text)?;
        Ok(text)
    }

    pub fn render(&self, env: &Environment) -> Result<Rendered, Error> {
        let mut context = Context::new(env);
        context.scaler.function_digest = self.scaler_function_digest(&context)?;
        let main = self.render_one("main", &context)?;
        let bootstrap = self.render_one("bootstrap", &BootstrapContext::new(env))?;
        let resolved = json!({
            "environment": env.name,
            // File names only: the output must not depend on where the repository sits.
            "files": env.files.iter().map(|f| Path::new(f).file_name().map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
            "stack_name": env.stack_name(),
            "bootstrap_stack_name": env.bootstrap_stack_name(),
            "ssm_parameter_name": env.ssm_parameter_name(),
            "initial_mount_target_azs": env.initial_mount_target_azs(),
            "max_mount_targets": env.max_mount_targets(),
            "config": env.config,
        });
        let config = serde_json::to_string_pretty(&resolved).map_err(|e| Error::Template {
            name: CONFIG_FILE.to_string(),
            reason: e.to_string(),
        })? + "\n";
        Ok(Rendered {
            main,
            bootstrap,
            config,
        })
    }
}

impl Renderer {
    /// A digest of the scaler function's rendered resource, comments left out: the
    /// version's description carries it, so a change to the function's configuration
    /// publishes a new version and a change elsewhere in the stack does not.
    fn scaler_function_digest(&self, context: &Context) -> Result<String, Error> {
        use sha2::{Digest, Sha256};
        let block = self.render_one("scaler_function", context)?;
        let mut hasher = Sha256::new();
        for line in block.lines().filter(|l| !l.trim_start().starts_with('#')) {
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        let digest = hasher.finalize();
        Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Trailing spaces dropped and runs of blank lines (left by block helpers) folded to one,
/// so the output reads as if written by hand.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A template bug must never reach CloudFormation: the output must at least parse.
fn check_yaml(name: &str, text: &str) -> Result<(), Error> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    while let Some(event) = parser.next_event() {
        if let Err(e) = event {
            return Err(Error::InvalidYaml {
                name: name.to_string(),
                line: e.marker().line(),
                reason: e.info().to_string(),
            });
        }
    }
    Ok(())
}

// `{{json value}}`: the value as JSON, which is also a valid YAML flow scalar or
// collection, so strings with quotes, colons or `#` cannot change the document.
handlebars_helper!(json_helper: |value: Json| serde_json::to_string(value).unwrap_or_default());

// `{{concat a b c}}`: the arguments' text joined.
handlebars_helper!(concat_helper: |*args| args.iter().map(|a| a.render()).collect::<String>());

/// `{{tags}}` / `{{tags "suffix"}}`: the root context's tags as a CloudFormation tag list
/// (flow style), with `Name = <stack>-<suffix>` first when a suffix is given.
#[derive(Debug, Clone, Copy)]
struct TagsHelper;

impl HelperDef for TagsHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc HbContext,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let root = ctx.data();
        let tags = root.get("tags").and_then(Json::as_array).ok_or_else(|| {
            RenderErrorReason::Other("the root context has no `tags` list".to_string())
        })?;
        let mut list = Vec::with_capacity(tags.len() + 1);
        if let Some(suffix) = h.param(0) {
            let prefix = root
                .get("stack_name")
                .or_else(|| root.get("project"))
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    RenderErrorReason::Other(
                        "the root context has no `stack_name` or `project`".to_string(),
                    )
                })?;
            list.push(
                json!({ "Key": "Name", "Value": format!("{prefix}-{}", suffix.value().render()) }),
            );
        }
        list.extend(tags.iter().cloned());
        Ok(ScopedJson::Derived(Json::String(
            Json::Array(list).to_string(),
        )))
    }
}

/// The stack policy for a rendered main template: no update may replace or delete the
/// file system or a mount target the stack owns (their data, or every client's
/// connection), except the logical ids in `allowed`, for the one update that asked. It
/// guards the stack against every tool, not only the deployer (a console update,
/// `aws cloudformation update-stack`).
pub fn stack_policy(main_template: &str, allowed: &[String]) -> String {
    let guarded: Vec<String> = crate::diff::template::parse(main_template, "the rendered template")
        .ok()
        .and_then(|t| t.get("Resources").and_then(|r| r.as_object()).cloned())
        .map(|resources| {
            resources
                .iter()
                .filter(|(id, r)| {
                    !allowed.contains(id)
                        && r.get("Type")
                            .and_then(|t| t.as_str())
                            .is_some_and(|t| crate::diff::DATA_TYPES.contains(&t))
                })
                .map(|(id, _)| format!("LogicalResourceId/{id}"))
                .collect()
        })
        .unwrap_or_default();
    let mut statements = vec![serde_json::json!({
        "Effect": "Allow",
        "Action": "Update:*",
        "Principal": "*",
        "Resource": "*",
    })];
    if !guarded.is_empty() {
        statements.push(serde_json::json!({
            "Effect": "Deny",
            "Action": ["Update:Replace", "Update:Delete"],
            "Principal": "*",
            "Resource": guarded,
        }));
    }
    serde_json::json!({ "Statement": statements }).to_string()
}
