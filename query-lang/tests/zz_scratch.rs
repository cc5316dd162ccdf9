//! Temporary scratch.
#[test]
fn scratch() {
    let mut inputs: Vec<(bool, String)> = std::fs::read_to_string("/tmp/q3.txt").unwrap_or_default().lines().map(|l| { let l = l.replace("\\n", "\n"); match l.strip_prefix("T:") { Some(s) => (true, s.to_string()), None => (false, l) } }).collect();
    inputs.push((false, format!("did \"A\" or {}", vec!["did \"B\""; 3000].join(" or "))));
    inputs.push((false, format!("user.x in [{}]", vec!["1"; 3000].join(","))));
    inputs.push((false, format!("{}did \"A\"{}", "(".repeat(33), ")".repeat(33))));
    for (trigger, src) in inputs {
        let res = if trigger { nudge_query_lang::parse_trigger(&src).map(|t| t.to_string()) } else { nudge_query_lang::parse_segment(&src).map(|e| e.to_string()) };
        match res {
            Ok(s) => println!("OK  {src}\n => {s}\n"),
            Err(e) => println!("{}{src:.100}\n\n```text\n{}\n```\n", if trigger {"T:"} else {""}, e.render(&src)),
        }
    }
}
