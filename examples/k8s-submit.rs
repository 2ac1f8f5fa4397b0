//! Send a build to a Kubernetes cluster from a program: the library call behind
//! `ossb build --backend kubernetes`. The build runs as a Job in the cluster; this program only
//! needs a kubeconfig (or a pod's service account) and prints the pod's progress as it comes.
//!
//! ```text
//! cargo run -p ossb-examples --example k8s-submit -- CONTEXT REGISTRY/NAME:TAG [NAMESPACE]
//! ```
//!
//! Ctrl-C deletes the Job and the ConfigMaps before exiting (exit code 8).

use ossb_core::backend::{BuildBackend, BuildRequest, Output};
use ossb_core::progress::{ProgressEvent, ProgressSink};
use ossb_k8s::backend::{KubernetesBackend, KubernetesOptions};

/// Prints the steps the pod reports.
struct Steps;

impl ProgressSink for Steps {
    fn event(&self, event: &ProgressEvent) {
        match event {
            ProgressEvent::StepStarted { description, .. } => eprintln!("step: {description}"),
            ProgressEvent::StepOutput { line, .. } => eprintln!("  | {line}"),
            ProgressEvent::Warning { message } => eprintln!("note: {message}"),
            _ => {}
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [context, image, rest @ ..] = args.as_slice() else {
        eprintln!("usage: k8s-submit CONTEXT REGISTRY/NAME:TAG [NAMESPACE]");
        std::process::exit(5);
    };
    let mut request = BuildRequest::new(context);
    request.tags = vec![image.clone()];
    request.outputs = vec![Output::Registry { name: None }];

    let options = KubernetesOptions {
        namespace: rest.first().cloned(),
        timeout: std::time::Duration::from_secs(900),
        handle_signals: true,
        ..KubernetesOptions::default()
    };
    match KubernetesBackend::new(options).build(&request, &Steps) {
        Ok(outcome) => println!("{} {}", image, outcome.image_digest),
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(err.exit_code().code());
        }
    }
}
