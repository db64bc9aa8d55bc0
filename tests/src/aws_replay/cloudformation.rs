//! CloudFormation responses as AWS writes them (the query protocol's XML), for
//! [`super::AwsReplay`]. Field names and shapes follow the CloudFormation API reference;
//! the reasons in the tests are worded as CloudFormation words them.

use super::Reply;

const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "ap-northeast-1";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn response(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId>\
         </ResponseMetadata></{action}Response>"
    )
}

pub fn stack_id(name: &str) -> String {
    format!(
        "arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{name}/11111111-2222-3333-4444-555555555555"
    )
}

/// An error response, as CloudFormation sends them (`ValidationError` for a missing
/// stack, `Throttling`, …).
pub fn error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{}</Code>\
         <Message>{}</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId>\
         </ErrorResponse>",
        escape(code),
        escape(message)
    )
}

/// A stack as DescribeStacks lists it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub outputs: Vec<(String, String)>,
    pub termination_protection: bool,
}

impl Stack {
    pub fn new(name: &str, status: &str) -> Stack {
        Stack {
            name: name.to_string(),
            status: status.to_string(),
            reason: None,
            outputs: Vec::new(),
            termination_protection: false,
        }
    }

    pub fn protected(mut self) -> Stack {
        self.termination_protection = true;
        self
    }

    pub fn reason(mut self, reason: &str) -> Stack {
        self.reason = Some(reason.to_string());
        self
    }

    fn xml(&self) -> String {
        let reason = self.reason.as_deref().map_or(String::new(), |r| {
            format!("<StackStatusReason>{}</StackStatusReason>", escape(r))
        });
        let outputs: String = self
            .outputs
            .iter()
            .map(|(k, v)| {
                format!(
                    "<member><OutputKey>{}</OutputKey><OutputValue>{}</OutputValue></member>",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        format!(
            "<member><StackName>{}</StackName><StackId>{}</StackId>\
             <CreationTime>2026-11-23T10:00:00.000Z</CreationTime>\
             <StackStatus>{}</StackStatus>{reason}<Outputs>{outputs}</Outputs>\
             <DisableRollback>false</DisableRollback><EnableTerminationProtection>{}</EnableTerminationProtection>\
             </member>",
            escape(&self.name),
            escape(&stack_id(&self.name)),
            escape(&self.status),
            self.termination_protection,
        )
    }
}

/// DescribeStacks answering with `stack`.
pub fn describe_stacks(stack: &Stack) -> Reply {
    Reply::xml(
        "DescribeStacks",
        200,
        response(
            "DescribeStacks",
            &format!("<Stacks>{}</Stacks>", stack.xml()),
        ),
    )
}

/// DescribeStacks for a stack that does not exist: CloudFormation's ValidationError.
pub fn no_stack(name: &str) -> Reply {
    Reply::xml(
        "DescribeStacks",
        400,
        error(
            "ValidationError",
            &format!("Stack with id {name} does not exist"),
        ),
    )
}

/// `action` throttled, as CloudFormation says it.
pub fn throttled(action: &str) -> Reply {
    Reply::xml(action, 400, error("Throttling", "Rate exceeded"))
}

pub fn create_stack(name: &str) -> Reply {
    Reply::xml(
        "CreateStack",
        200,
        response(
            "CreateStack",
            &format!("<StackId>{}</StackId>", escape(&stack_id(name))),
        ),
    )
}

pub fn update_stack(name: &str) -> Reply {
    Reply::xml(
        "UpdateStack",
        200,
        response(
            "UpdateStack",
            &format!("<StackId>{}</StackId>", escape(&stack_id(name))),
        ),
    )
}

/// GetTemplate answering with `body` as the original template.
pub fn get_template(body: &str) -> Reply {
    Reply::xml(
        "GetTemplate",
        200,
        response(
            "GetTemplate",
            &format!(
                "<TemplateBody>{}</TemplateBody><StagesAvailable><member>Original</member>\
                 <member>Processed</member></StagesAvailable>",
                escape(body)
            ),
        ),
    )
}

/// One stack event.
#[derive(Debug, Clone)]
pub struct Event {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
    /// Seconds after 10:00:00 on the test day; events are listed newest first.
    pub second: u32,
}

impl Event {
    pub fn new(logical_id: &str, resource_type: &str, status: &str, second: u32) -> Event {
        Event {
            logical_id: logical_id.to_string(),
            resource_type: resource_type.to_string(),
            status: status.to_string(),
            reason: None,
            second,
        }
    }

    pub fn reason(mut self, reason: &str) -> Event {
        self.reason = Some(reason.to_string());
        self
    }

    fn xml(&self, stack: &str, n: usize) -> String {
        let reason = self.reason.as_deref().map_or(String::new(), |r| {
            format!("<ResourceStatusReason>{}</ResourceStatusReason>", escape(r))
        });
        format!(
            "<member><EventId>{}-{}-{}-{n}</EventId><StackName>{}</StackName><StackId>{}</StackId>\
             <LogicalResourceId>{}</LogicalResourceId><PhysicalResourceId></PhysicalResourceId>\
             <ResourceType>{}</ResourceType>\
             <Timestamp>2026-11-23T10:{:02}:{:02}.000Z</Timestamp>\
             <ResourceStatus>{}</ResourceStatus>{reason}</member>",
            escape(&self.logical_id),
            escape(&self.status),
            self.second,
            escape(stack),
            escape(&stack_id(stack)),
            escape(&self.logical_id),
            escape(&self.resource_type),
            self.second / 60,
            self.second % 60,
            escape(&self.status),
        )
    }
}

/// DescribeStackEvents listing `events` as given (newest first, as AWS lists them).
pub fn stack_events(stack: &str, events: &[Event]) -> Reply {
    let members: String = events
        .iter()
        .enumerate()
        .map(|(n, e)| e.xml(stack, n))
        .collect();
    Reply::xml(
        "DescribeStackEvents",
        200,
        response(
            "DescribeStackEvents",
            &format!("<StackEvents>{members}</StackEvents>"),
        ),
    )
}

/// DescribeStacks for the stack named `name` only.
pub fn describe(stack: &Stack) -> Reply {
    describe_stacks(stack).when(&format!("StackName={}", stack.name))
}

pub fn create_change_set(stack: &str, id: &str) -> Reply {
    Reply::xml(
        "CreateChangeSet",
        200,
        response(
            "CreateChangeSet",
            &format!(
                "<Id>{}</Id><StackId>{}</StackId>",
                escape(id),
                escape(&stack_id(stack))
            ),
        ),
    )
}

/// A resource change of a change set: action, replacement (`True`, `False`,
/// `Conditional`) and the changed property names with whether each recreates.
#[derive(Debug, Clone)]
pub struct Change {
    pub logical_id: String,
    pub resource_type: String,
    pub action: String,
    pub replacement: Option<String>,
    pub properties: Vec<(String, bool)>,
}

impl Change {
    fn xml(&self) -> String {
        let replacement = self.replacement.as_deref().map_or(String::new(), |r| {
            format!("<Replacement>{}</Replacement>", escape(r))
        });
        let details: String = self
            .properties
            .iter()
            .map(|(name, recreates)| {
                format!(
                    "<member><Target><Attribute>Properties</Attribute><Name>{}</Name>\
                     <RequiresRecreation>{}</RequiresRecreation></Target>\
                     <Evaluation>Static</Evaluation><ChangeSource>DirectModification</ChangeSource></member>",
                    escape(name),
                    if *recreates { "Always" } else { "Never" }
                )
            })
            .collect();
        format!(
            "<member><Type>Resource</Type><ResourceChange><Action>{}</Action>\
             <LogicalResourceId>{}</LogicalResourceId><ResourceType>{}</ResourceType>\
             {replacement}<Scope><member>Properties</member></Scope><Details>{details}</Details>\
             </ResourceChange></member>",
            escape(&self.action),
            escape(&self.logical_id),
            escape(&self.resource_type),
        )
    }
}

/// DescribeChangeSet: `status` (`CREATE_COMPLETE`, `FAILED`, …) with its reason and
/// changes.
pub fn describe_change_set(
    stack: &str,
    id: &str,
    status: &str,
    reason: Option<&str>,
    changes: &[Change],
) -> Reply {
    let reason = reason.map_or(String::new(), |r| {
        format!("<StatusReason>{}</StatusReason>", escape(r))
    });
    let members: String = changes.iter().map(Change::xml).collect();
    Reply::xml(
        "DescribeChangeSet",
        200,
        response(
            "DescribeChangeSet",
            &format!(
                "<ChangeSetId>{}</ChangeSetId><ChangeSetName>deployer</ChangeSetName>\
                 <StackId>{}</StackId><StackName>{}</StackName>\
                 <ExecutionStatus>AVAILABLE</ExecutionStatus><Status>{}</Status>{reason}\
                 <Changes>{members}</Changes>",
                escape(id),
                escape(&stack_id(stack)),
                escape(stack),
                escape(status),
            ),
        ),
    )
}

/// An action that answers with an empty result (ExecuteChangeSet, DeleteChangeSet, …).
pub fn empty(action: &str) -> Reply {
    Reply::xml(action, 200, response(action, ""))
}

/// ListStackResources answering with (logical id, type, physical id).
pub fn list_stack_resources(resources: &[(&str, &str, &str)]) -> Reply {
    let members: String = resources
        .iter()
        .map(|(logical, kind, physical)| {
            format!(
                "<member><LogicalResourceId>{}</LogicalResourceId><PhysicalResourceId>{}</PhysicalResourceId>\
                 <ResourceType>{}</ResourceType><LastUpdatedTimestamp>2026-11-23T10:00:00.000Z</LastUpdatedTimestamp>\
                 <ResourceStatus>UPDATE_COMPLETE</ResourceStatus></member>",
                escape(logical),
                escape(physical),
                escape(kind)
            )
        })
        .collect();
    Reply::xml(
        "ListStackResources",
        200,
        response(
            "ListStackResources",
            &format!("<StackResourceSummaries>{members}</StackResourceSummaries>"),
        ),
    )
}

/// GetStackPolicy answering with `policy` (JSON text).
pub fn get_stack_policy(policy: &str) -> Reply {
    let escaped = policy
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    Reply::xml(
        "GetStackPolicy",
        200,
        response(
            "GetStackPolicy",
            &format!("<StackPolicyBody>{escaped}</StackPolicyBody>"),
        ),
    )
}

/// DetectStackDrift starting detection run `id`.
pub fn detect_stack_drift(id: &str) -> Reply {
    Reply::xml(
        "DetectStackDrift",
        200,
        response(
            "DetectStackDrift",
            &format!(
                "<StackDriftDetectionId>{}</StackDriftDetectionId>",
                escape(id)
            ),
        ),
    )
}

/// DescribeStackDriftDetectionStatus: `detection` (`DETECTION_IN_PROGRESS`, …) and, once
/// done, the stack's drift status and how many resources drifted.
pub fn drift_detection_status(
    stack: &str,
    id: &str,
    detection: &str,
    drift: Option<(&str, u32)>,
    reason: Option<&str>,
) -> Reply {
    let drift = drift.map_or_else(String::new, |(status, count)| {
        format!(
            "<StackDriftStatus>{status}</StackDriftStatus>\
             <DriftedStackResourceCount>{count}</DriftedStackResourceCount>"
        )
    });
    let reason = reason.map_or_else(String::new, |r| {
        format!(
            "<DetectionStatusReason>{}</DetectionStatusReason>",
            escape(r)
        )
    });
    Reply::xml(
        "DescribeStackDriftDetectionStatus",
        200,
        response(
            "DescribeStackDriftDetectionStatus",
            &format!(
                "<StackId>{}</StackId><StackDriftDetectionId>{}</StackDriftDetectionId>\
                 <DetectionStatus>{detection}</DetectionStatus>{drift}{reason}\
                 <Timestamp>2026-12-07T10:00:00.000Z</Timestamp>",
                escape(&stack_id(stack)),
                escape(id)
            ),
        ),
    )
}

/// A resource as drift detection reports it, with its property differences as (path,
/// expected, actual, `ADD`/`REMOVE`/`NOT_EQUAL`).
#[derive(Debug, Clone)]
pub struct ResourceDrift {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    pub status: String,
    pub differences: Vec<(String, String, String, String)>,
}

/// DescribeStackResourceDrifts listing `drifts`.
pub fn stack_resource_drifts(stack: &str, drifts: &[ResourceDrift]) -> Reply {
    let members: String = drifts
        .iter()
        .map(|d| {
            let differences: String = d
                .differences
                .iter()
                .map(|(path, expected, actual, kind)| {
                    format!(
                        "<member><PropertyPath>{}</PropertyPath><ExpectedValue>{}</ExpectedValue>\
                         <ActualValue>{}</ActualValue><DifferenceType>{kind}</DifferenceType></member>",
                        escape(path),
                        escape(expected),
                        escape(actual)
                    )
                })
                .collect();
            format!(
                "<member><StackId>{}</StackId><LogicalResourceId>{}</LogicalResourceId>\
                 <PhysicalResourceId>{}</PhysicalResourceId><ResourceType>{}</ResourceType>\
                 <PropertyDifferences>{differences}</PropertyDifferences>\
                 <StackResourceDriftStatus>{}</StackResourceDriftStatus>\
                 <Timestamp>2026-12-07T10:00:00.000Z</Timestamp></member>",
                escape(&stack_id(stack)),
                escape(&d.logical_id),
                escape(&d.physical_id),
                escape(&d.resource_type),
                escape(&d.status)
            )
        })
        .collect();
    Reply::xml(
        "DescribeStackResourceDrifts",
        200,
        response(
            "DescribeStackResourceDrifts",
            &format!("<StackResourceDrifts>{members}</StackResourceDrifts>"),
        ),
    )
}
