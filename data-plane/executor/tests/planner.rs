//! Planner cases: one `.sql` file per case under `tests/planner/`, its expectation in leading
//! comments: `-- error: <code> <line>:<column>` for a refused job, or `-- task: <task query>` and
//! (for aggregations) `-- final: <final query>`, `-- shape: map|dedup|aggregate`. Run with
//! `HDI_BLESS=1` to rewrite the expectations from what the planner does now (then review the diff).
#![allow(clippy::unwrap_used, reason = "tests")]

use hdi_executor::plan::{JobPlan, Shape};
use hdi_executor::sql::parse_script;

fn actual(script: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async { JobPlan::new(parse_script(script)?).await });
    match result {
        Err(e) => vec![format!(
            "-- error: {} {}:{}",
            e.code,
            e.line.unwrap_or(0),
            e.column.unwrap_or(0)
        )],
        Ok(plan) => {
            let shape = match &plan.shape {
                Shape::Map => "map",
                Shape::Dedup { .. } => "dedup",
                Shape::Aggregate(_) => "aggregate",
            };
            let mut lines = vec![
                format!("-- shape: {shape}"),
                format!("-- task: {}", plan.task_sql),
            ];
            if let Some(agg) = plan.aggregate() {
                lines.push(format!("-- final: {}", agg.final_sql));
            }
            let columns: Vec<String> = plan
                .output_schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect();
            lines.push(format!("-- output: {}", columns.join(", ")));
            lines
        }
    }
}

#[test]
fn planner_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/planner");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let bless = std::env::var_os("HDI_BLESS").is_some();
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<String> = text
            .lines()
            .take_while(|l| l.starts_with("-- "))
            .map(str::to_string)
            .collect();
        let script: String = text
            .lines()
            .skip(expected.len())
            .collect::<Vec<_>>()
            .join("\n");
        let got = actual(&script);
        if bless {
            std::fs::write(&file, format!("{}\n{script}\n", got.join("\n"))).unwrap();
        } else if got != expected {
            failures.push(format!(
                "{}:\n  expected {expected:#?}\n  got {got:#?}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
