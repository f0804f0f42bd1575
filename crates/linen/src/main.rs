use std::io::{Read, Write};

fn main() {
    let mut stdin = Vec::new();
    // An unreadable stdin is reported like an undecodable one (code 6).
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let vars = std::env::vars().collect();
    let plugin = linen::Linen::default();
    // Buffered so the log can record exactly what the runtime was told.
    let mut out = Vec::new();
    let code = cni::run(&plugin, &vars, &stdin, &mut out);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    if code != 0 {
        plugin
            .log
            .borrow_mut()
            .step(String::from_utf8_lossy(&out).trim());
    }
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
