//! `regbench k8s render`: the manifests of a distributed run on Kubernetes — the scenario in a
//! ConfigMap, an Indexed Job whose pod `i` runs segment `i` of `n` (`--segment auto/n` reads
//! `JOB_COMPLETION_INDEX`), all starting at one `--start-at` with one seed — printed as YAML for
//! `kubectl apply -f -`. Each pod prints its shard's JSON on stdout, so `kubectl logs` collects them
//! for `regbench merge -` without a shared volume (docs/distributed.md says why).

use std::io::Write;
use std::time::SystemTime;

use anyhow::anyhow;
use clap::Parser;

use crate::app::{usage, Failure};
use crate::cli::{Cli, Command, K8sRenderArgs};

/// Where the plan is mounted in the pods.
pub(crate) const PLAN_PATH: &str = "/plan/plan.toml";

pub(crate) fn cmd_render(a: &K8sRenderArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    let n = a.parallelism;
    if n == 0 || n > 1000 {
        return Err(usage(anyhow!("--parallelism {n}: between 1 and 1000 pods")));
    }
    if !is_dns_label(&a.name) || a.name.len() > 50 {
        return Err(usage(anyhow!(
            "--name '{}': a Kubernetes name (lower-case letters, digits and '-', at most 50)",
            a.name
        )));
    }
    let plan = std::fs::read_to_string(&a.plan)
        .map_err(|e| usage(anyhow!(e).context(format!("cannot read '{}'", a.plan.display()))))?;
    let start = match a.start_at {
        Some(t) => t,
        None => SystemTime::now() + a.start_in,
    };
    let seed = a.seed.unwrap_or_else(super::run::fresh_seed);
    let start_at = crate::util::rfc3339(start);
    let mut args: Vec<String> = [
        "run",
        PLAN_PATH,
        "--segment",
        &format!("auto/{n}"),
        "--start-at",
        &start_at,
        "--seed",
        &seed.to_string(),
        "--quiet",
        "--progress",
        "none",
        "-o",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(a.run_args.iter().cloned());
    check_pod_command(a, &args)?;

    let name = &a.name;
    let labels = format!(
        "{{app.kubernetes.io/name: regbench, app.kubernetes.io/instance: {}}}",
        json(name)
    );
    let mut y = String::new();
    y.push_str(&format!(
        "# regbench k8s render: {n} pods send {} from {start_at} (seed {seed}).\n\
         # kubectl apply -f THIS.yaml\n\
         # kubectl wait --for=condition=complete job/{name} --timeout=1h\n\
         # kubectl logs -l job-name={name} --tail=-1 --max-log-requests={n} | regbench merge - -o html=report.html\n",
        a.plan.display()
    ));
    y.push_str(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n  labels: {labels}\ndata:\n  plan.toml: |\n",
        json(&format!("{name}-plan"))
    ));
    for line in plan.lines() {
        y.push_str("    ");
        y.push_str(line);
        y.push('\n');
    }
    y.push_str(&format!(
        "---\n\
         apiVersion: batch/v1\n\
         kind: Job\n\
         metadata:\n  name: {name_json}\n  labels: {labels}\n\
         spec:\n  \
           completionMode: Indexed\n  \
           completions: {n}\n  \
           parallelism: {n}\n  \
           # A pod that failed cannot be run again: its start time has passed.\n  \
           backoffLimit: 0\n  \
           ttlSecondsAfterFinished: 86400\n  \
           template:\n    \
             metadata:\n      labels: {labels}\n    \
             spec:\n      \
               restartPolicy: Never\n      \
               securityContext: {{runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}}\n      \
               containers:\n      \
               - name: regbench\n        \
                 image: {image}\n        \
                 args: {args}\n        \
                 resources:\n          \
                   requests: {{cpu: {cpu}, memory: 256Mi}}\n          \
                   limits: {{memory: 1Gi}}\n        \
                 securityContext: {{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {{drop: [ALL]}}}}\n        \
                 volumeMounts:\n        \
                 - {{name: plan, mountPath: /plan, readOnly: true}}\n      \
               volumes:\n      \
               - name: plan\n        \
                 configMap: {{name: {plan_map}}}\n",
        name_json = json(name),
        image = json(&a.image),
        args = serde_json::Value::from(args),
        cpu = json(&a.cpu),
        plan_map = json(&format!("{name}-plan")),
    ));
    out.write_all(y.as_bytes())
        .map_err(|e| crate::app::run_failed(anyhow!(e).context("cannot write the manifests")))?;
    Ok(crate::app::exit::OK)
}

/// The pods' command line must be one `regbench run` takes: parsed and its plan built here, with
/// the scenario from the file given and segment 0, so a mistake fails now rather than in n pods.
fn check_pod_command(a: &K8sRenderArgs, args: &[String]) -> Result<(), Failure> {
    let local: Vec<String> = std::iter::once("regbench".to_string())
        .chain(args.iter().map(|arg| match arg.as_str() {
            PLAN_PATH => a.plan.display().to_string(),
            s if s.starts_with("auto/") => s.replacen("auto", "0", 1),
            s => s.to_string(),
        }))
        .collect();
    let cli = Cli::try_parse_from(&local).map_err(|e| {
        usage(anyhow!(
            "the pods' command line would be refused: {}",
            e.render().to_string().trim()
        ))
    })?;
    let Command::Run(run) = cli.command else {
        return Err(usage(anyhow!("the pods' command must be `regbench run`")));
    };
    super::run::plan_for(&run).map(|_| ())
}

/// A JSON string is a YAML scalar that needs no further quoting rules.
fn json(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
