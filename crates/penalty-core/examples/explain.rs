//! Prints the order report of one order of a JSONL file: `cargo run -p
//! penalty-core --example explain -- EVENTS.jsonl ORDER_ID AS_OF`.
use penalty_core::{parse_line, Ledger, Policy, UnixNs};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: explain EVENTS.jsonl ORDER_ID AS_OF");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[1]).unwrap_or_default();
    let mut ledger = Ledger::new(Policy::default());
    for line in text.lines() {
        if let Ok(parsed) = parse_line(line.as_bytes()) {
            let _ = ledger.apply(&parsed.event, UnixNs(0));
        }
    }
    let Some(as_of) = UnixNs::parse_rfc3339(&args[3]) else {
        eprintln!("AS_OF must be RFC 3339 with an offset");
        std::process::exit(2);
    };
    match ledger.order_report(&args[2], as_of) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Err(e) => eprintln!("{e}"),
    }
}
