use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    // An unreadable stdin is reported like an undecodable one (code 6).
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let vars = std::env::vars().collect();
    let plugin = linen::Linen::default();
    let mut stdout = std::io::stdout().lock();
    let code = cni::run(&plugin, &vars, &stdin, &mut stdout);
    let _ = stdout.flush();
    let header = format!(
        "{} container={} netns={} exit={code}",
        vars.get("CNI_COMMAND").map(String::as_str).unwrap_or("?"),
        vars.get("CNI_CONTAINERID")
            .map(String::as_str)
            .unwrap_or(""),
        vars.get("CNI_NETNS").map(String::as_str).unwrap_or(""),
    );
    plugin.log.borrow_mut().flush(&header);
    std::process::exit(code);
}
