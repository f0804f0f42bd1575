//! The seed's own workflow: CNI's reference runtime `cnitool` (built from
//! Debian's source by scripts/build-cnitool.sh) driving the whole chain.

mod common;
use common::{Node, Pod};
use serde_json::{json, Value};
use std::path::PathBuf;

fn cnitool() -> PathBuf {
    let p = std::env::var_os("LINEN_CNITOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/cnitool")
        });
    assert!(
        p.exists(),
        "cnitool not found at {} (run scripts/build-cnitool.sh)",
        p.display()
    );
    p
}

struct Tool<'a> {
    node: &'a Node,
    netconf_dir: PathBuf,
    cni_path: String,
    net: String,
}

impl Tool<'_> {
    fn run(&self, verb: &str, pod: &lab::Netns) -> (bool, String) {
        let out = self
            .node
            .ns
            .cmd([
                cnitool().as_os_str(),
                verb.as_ref(),
                self.net.as_ref(),
                pod.path().as_os_str(),
            ])
            .env("CNI_PATH", &self.cni_path)
            .env("NETCONFPATH", &self.netconf_dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

fn walkthrough(version: &str) {
    let node = Node::start();
    let conflist = node.conflist(version, json!({"vtepIPs": ["10.245.2.2", "10.245.2.3"]}));
    let chain = node.chain(conflist.clone());
    let netconf_dir = node.ovs.dir.join("net.d");
    std::fs::create_dir_all(&netconf_dir).unwrap();
    std::fs::write(
        netconf_dir.join("10-linen.conflist"),
        serde_json::to_vec_pretty(&conflist).unwrap(),
    )
    .unwrap();
    let tool = Tool {
        node: &node,
        netconf_dir,
        cni_path: chain.cni_path(),
        net: conflist["name"].as_str().unwrap().to_string(),
    };
    let pod = lab::Netns::create("lnp").unwrap();

    let (ok, out) = tool.run("add", &pod);
    assert!(ok, "cnitool add at {version}: {out}");
    let result: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(result["cniVersion"], version);
    let mut ports = node.ports("br0");
    ports.sort();
    assert_eq!(ports, vec!["vxif10_245_2_2", "vxif10_245_2_3"]);
    assert_eq!(node.master_of("br0").as_deref(), Some("kbr0"));
    assert!(pod.ping("10.244.1.1", 2), "pod cannot reach its gateway");

    let (ok, out) = tool.run("check", &pod);
    assert!(ok, "cnitool check at {version}: {out}");
    // Drift that cnitool's CHECK must surface from linen.
    node.vsctl(&["del-port", "br0", "vxif10_245_2_3"]);
    let (ok, out) = tool.run("check", &pod);
    assert!(
        !ok && out.contains("vxif10_245_2_3"),
        "CHECK missed a deleted VTEP: {out}"
    );
    // A second pod through the chain repairs it.
    let _second = Pod::add(&chain);
    let (ok, out) = tool.run("check", &pod);
    assert!(ok, "{out}");

    let (ok, out) = tool.run("del", &pod);
    assert!(ok, "cnitool del: {out}");
    let (ok, out) = tool.run("del", &pod);
    assert!(ok, "second cnitool del: {out}");
    assert_eq!(node.bridges(), vec!["br0"]);
    // libcni drops its result cache on DEL; make sure nothing of ours stays.
    for e in std::fs::read_dir("/var/lib/cni/results")
        .into_iter()
        .flatten()
        .flatten()
    {
        assert!(
            !e.file_name().to_string_lossy().starts_with(&tool.net),
            "cached result left: {:?}",
            e.path()
        );
    }
}

#[test]
fn cnitool_walkthrough_at_0_4_0() {
    lab::require_root!();
    walkthrough("0.4.0");
}

#[test]
fn cnitool_walkthrough_at_1_0_0() {
    lab::require_root!();
    walkthrough("1.0.0");
}
