//! `penalty cluster …` and `penalty ingest --cluster`: glue over
//! penalty-cluster, on a tokio runtime of their own.

use std::io::{self, BufReader};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use penalty_cluster::ingest::Counts;
use penalty_cluster::setup::{self, ClusterConfig};
use penalty_core::labels::{Lang, Phrase};
use penalty_core::Policy;
use penalty_store::ingest::RejectsFile;

use crate::cli::*;
use crate::output::{json_line, print};

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(
    db: &Path,
    policy: &Policy,
    command: ClusterCommand,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    match command {
        ClusterCommand::Init(args) => rt.block_on(async {
            let client = setup::connect(&args.cluster).await?;
            let js = setup::jetstream(client);
            let config = ClusterConfig {
                partitions: args.partitions,
                replicas: args.replicas,
                policy_json: serde_json::to_string(policy)?,
            };
            setup::init(&js, &config).await?;
            print(&format!(
                "{}\n",
                Phrase::ClusterReady.fill(lang, &[&config.partitions, &config.replicas])
            ))?;
            Ok(ExitCode::SUCCESS)
        }),
        ClusterCommand::Node(args) => rt.block_on(async {
            eprintln!(
                "{}",
                Phrase::ServingNode.fill(lang, &[&args.node, &args.addr, &db.display()])
            );
            let options = penalty_cluster::node::NodeOptions {
                nats: args.cluster,
                node: args.node,
                db: db.to_path_buf(),
                addr: args.addr,
                policy: policy.clone(),
                tokens: args.access.tokens,
                allowed_hosts: args.access.allowed_hosts,
                max_replay_events: args.max_replay_events,
            };
            // Ctrl-C or SIGTERM: no new requests, those in flight finish,
            // the workers checkpoint, then exit 0.
            penalty_cluster::serve::run(options, penalty_server::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }),
        ClusterCommand::Status(args) => rt.block_on(async {
            let client = setup::connect(&args.cluster).await?;
            let js = setup::jetstream(client.clone());
            let status = penalty_cluster::node::cluster_status(&client, &js).await?;
            if args.json {
                print(&json_line(&status)?)?;
            } else {
                print(&crate::render::cluster_status(&status, lang))?;
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}

pub fn ingest(
    db: &Path,
    _policy: &Policy,
    args: IngestArgs,
    lang: Lang,
) -> anyhow::Result<ExitCode> {
    let url = args.cluster.clone().unwrap_or_default();
    let inputs: Vec<(String, BufReader<Box<dyn io::Read + Send>>)> =
        crate::inputs::open_inputs(&args.files, lang)?
            .into_iter()
            .map(|(name, _, reader)| (name, BufReader::new(reader)))
            .collect();
    let rejects_path = match &args.rejects {
        Some(path) => path.clone(),
        None => {
            std::fs::create_dir_all(db)
                .with_context(|| format!("creating {} for the rejects file", db.display()))?;
            db.join("rejects.jsonl")
        }
    };
    let mut rejects = RejectsFile::open(&rejects_path, "-")?;
    rejects.set_lang(lang);
    let rt = runtime()?;
    let total = rt.block_on(async {
        let client = setup::connect(&url).await?;
        let js = setup::jetstream(client.clone());
        let config = setup::read_config(&js).await?;
        let mut total = Counts::default();
        for (name, reader) in inputs {
            rejects.set_source(&name);
            let counts = penalty_cluster::ingest::ingest(
                &client,
                &js,
                config.partitions,
                reader,
                |line, reason, raw| {
                    rejects
                        .write(line, reason, raw, raw.len() as u64)
                        .map_err(|e| penalty_cluster::ClusterError::Io {
                            context: "writing the rejects file".into(),
                            source: io::Error::other(e.to_string()),
                        })
                },
            )
            .await
            .with_context(|| Phrase::ClusterIngestFailed.fill(lang, &[&name]))?;
            total.add(&counts);
        }
        anyhow::Ok(total)
    })?;
    rejects.sync()?;
    if args.json {
        print(&json_line(&total)?)?;
    } else {
        let counts = penalty_store::ingest::IngestCounts {
            read: total.read,
            appended: total.appended,
            duplicates: total.duplicates,
            rejected: total.rejected,
        };
        let mut text = crate::inputs::ingest_summary(&counts, lang);
        if total.rejected > 0 {
            text += &Phrase::RejectsAt.fill(lang, &[&rejects_path.display()]);
            text.push('\n');
        }
        print(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
