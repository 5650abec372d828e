//! The deployment manifests cannot run here (no Docker, no Kubernetes), so they are read:
//! every variable they give the engine is a setting it reads (`flashcart check-config`
//! refuses any other), and every port they name is the one the engine listens on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every document of a YAML file, merge keys (`<<: *node`) applied, as JSON.
fn yaml_documents(path: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = serde_yaml_ng::Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{path} is not YAML: {error}"));
            value
                .apply_merge()
                .unwrap_or_else(|error| panic!("{path}: {error}"));
            serde_json::to_value(value).expect("YAML as JSON")
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// What `flashcart check-config` says of exactly these variables, or its refusal.
fn check_config(environment: &BTreeMap<String, String>) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_flashcart"))
        .arg("check-config")
        .env_clear()
        .envs(environment)
        .output()
        .expect("the flashcart binary runs");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("check-config prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn port_of(address: &Value) -> u16 {
    let address = address.as_str().expect("an address");
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// The port of the first `host:port` (or `http://host:port/`) in `text` after `host`.
fn port_after(text: &str, host: &str) -> u16 {
    let start = text
        .find(&format!("{host}:"))
        .unwrap_or_else(|| panic!("{host}: not in {text:?}"));
    text[start + host.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no port after {host} in {text:?}"))
}

/// The Dockerfile's `ENV` pairs (continuation lines included) and `EXPOSE`d ports.
fn dockerfile() -> (BTreeMap<String, String>, Vec<u16>, String) {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut environment = BTreeMap::new();
    let mut exposed = Vec::new();
    let mut healthcheck = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (name, value) = pair.split_once('=').expect("ENV NAME=value");
                environment.insert(name.to_owned(), value.to_owned());
            }
        } else if let Some(ports) = line.strip_prefix("EXPOSE ") {
            exposed.extend(ports.split_whitespace().map(|port| {
                port.parse::<u16>()
                    .unwrap_or_else(|_| panic!("EXPOSE {port}"))
            }));
        } else if line.starts_with("HEALTHCHECK") {
            healthcheck = line.to_owned();
        }
    }
    (environment, exposed, healthcheck)
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(name, value)| {
                    let value = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (name.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_image_listens_where_it_says() {
    let (environment, exposed, healthcheck) = dockerfile();
    assert!(!environment.is_empty(), "the image configures the engine");
    let config = check_config(&environment).expect("the image's settings load");
    let listen = port_of(&config["listen"]);
    assert!(
        exposed.contains(&listen),
        "EXPOSE {exposed:?} lacks {listen}"
    );
    let internal = port_of(&config["internalListen"]);
    assert!(
        exposed.contains(&internal),
        "EXPOSE {exposed:?} lacks {internal}"
    );
    assert_eq!(port_after(&healthcheck, "127.0.0.1"), listen);
    assert!(healthcheck.contains("/healthz"), "{healthcheck}");
    let text = read("Dockerfile");
    assert!(text.contains("\nUSER "), "the engine does not run as root");
    assert!(text.matches("\nFROM ").count() >= 2, "a multi-stage build");

    // The checker can fail: a variable the engine does not read is refused.
    let mut misspelled = environment.clone();
    misspelled.insert("FLASHCART_SERVER__LISTN".into(), "0.0.0.0:1".into());
    let refusal = check_config(&misspelled).expect_err("an unknown setting is refused");
    assert!(refusal.contains("listn"), "{refusal}");
}

#[test]
fn compose_gives_its_nodes_only_settings_the_engine_reads_on_its_ports() {
    let compose = yaml_documents("deploy/compose.yaml").remove(0);
    let services = compose["services"].as_object().expect("services");
    let (image_environment, _, _) = dockerfile();
    let nodes: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, service)| service["image"].as_str() == Some("flashcart:latest"))
        .collect();
    assert!(nodes.len() >= 2, "a cluster of engine nodes");
    let nginx = read("deploy/nginx/flashcart.conf");
    let prometheus = read("deploy/prometheus/prometheus.yml");
    for (name, node) in &nodes {
        let mut environment = image_environment.clone();
        for (variable, value) in string_map(&node["environment"]) {
            assert!(variable.starts_with("FLASHCART_"), "{name}: {variable}");
            // `${JWT_SECRET:?...}` is the operator's to set when starting compose.
            let value = if value.starts_with("${") {
                "a-secret-of-the-operator".to_owned()
            } else {
                value
            };
            environment.insert(variable, value);
        }
        let config = check_config(&environment)
            .unwrap_or_else(|refusal| panic!("{name}'s settings: {refusal}"));
        assert_eq!(config["clustered"], true, "{name}");
        assert_eq!(config["store"], "postgres", "{name}");
        let listen = port_of(&config["listen"]);
        let internal = port_of(&config["internalListen"]);
        let advertise = &environment["FLASHCART_CLUSTER__ADVERTISE"];
        assert_eq!(port_after(advertise, name), internal, "{name} advertises");
        let healthcheck = node["healthcheck"]["test"].to_string();
        assert_eq!(port_after(&healthcheck, "127.0.0.1"), listen, "{name}");
        assert_eq!(port_after(&nginx, name), listen, "nginx's upstream {name}");
        assert_eq!(port_after(&prometheus, name), listen, "prometheus's {name}");
    }
    for server in [
        "postgres",
        "redis",
        "rabbitmq",
        "kafka",
        "prometheus",
        "grafana",
        "nginx",
    ] {
        assert!(services.contains_key(server), "compose runs {server}");
    }
    // NGINX is the proxy the nodes trust, at the address they trust.
    let trusted = nodes[0].1["environment"]["FLASHCART_RATE_LIMITS__TRUSTED_PROXIES"]
        .as_str()
        .expect("trusted proxies");
    let nginx_address = services["nginx"]["networks"]["shop"]["ipv4_address"]
        .as_str()
        .expect("nginx's address");
    assert!(
        trusted.contains(nginx_address),
        "{trusted} vs {nginx_address}"
    );
}

#[test]
fn kubernetes_runs_nodes_with_probes_secrets_and_ports_the_engine_uses() {
    let documents: Vec<Value> = ["configmap", "statefulset", "service", "poddisruptionbudget"]
        .iter()
        .flat_map(|file| yaml_documents(&format!("deploy/k8s/{file}.yaml")))
        .collect();
    let of_kind = |kind: &str| -> Vec<&Value> {
        documents
            .iter()
            .filter(|document| document["kind"] == kind)
            .collect()
    };
    let config_map = of_kind("ConfigMap")[0];
    let stateful_set = of_kind("StatefulSet")[0];
    let services = of_kind("Service");
    let budget = of_kind("PodDisruptionBudget")[0];
    let pod = &stateful_set["spec"]["template"];
    let container = &pod["spec"]["containers"][0];

    // The node's environment as the kubelet builds it: the image's, the ConfigMap's, then
    // the container's own, with $(POD_NAME) expanded and secrets standing in.
    let pod_name = "flashcart-0";
    let (mut environment, _, _) = dockerfile();
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        config_map["metadata"]["name"]
    );
    environment.extend(string_map(&config_map["data"]));
    let mut secrets = Vec::new();
    for variable in container["env"].as_array().expect("env") {
        let name = variable["name"].as_str().expect("a name").to_owned();
        let value = if let Some(value) = variable["value"].as_str() {
            value.replace("$(POD_NAME)", pod_name)
        } else if variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod_name.to_owned()
        } else if let Some(secret) = variable["valueFrom"]["secretKeyRef"].as_object() {
            secrets.push((
                name.clone(),
                secret["key"].as_str().expect("key").to_owned(),
            ));
            if secret["key"] == "database-url" {
                "postgres://flashcart@postgres:5432/flashcart".to_owned()
            } else {
                "a-secret-from-the-cluster".to_owned()
            }
        } else {
            panic!("{name}: a value this test does not know");
        };
        environment.insert(name, value);
    }
    // Only FLASHCART_ variables configure the engine; POD_NAME only feeds them.
    let engine_environment: BTreeMap<String, String> = environment
        .into_iter()
        .filter(|(name, _)| name.starts_with("FLASHCART_"))
        .collect();
    let config = check_config(&engine_environment).expect("the nodes' settings load");
    assert_eq!(config["clustered"], true);
    for (variable, key) in [
        ("FLASHCART_AUTH__JWT_SECRET", "jwt-secret"),
        ("FLASHCART_PAYMENTS__WEBHOOK_SECRET", "webhook-secret"),
    ] {
        assert!(
            secrets.contains(&(variable.to_owned(), key.to_owned())),
            "{variable} from the Secret's {key}: {secrets:?}"
        );
    }

    // Named ports are the engine's ports, and the probes use them.
    let ports: BTreeMap<String, u16> = container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|port| {
            let number = port["containerPort"].as_u64().expect("a port number");
            (
                port["name"].as_str().expect("a named port").to_owned(),
                u16::try_from(number).expect("a port"),
            )
        })
        .collect();
    assert_eq!(ports["http"], port_of(&config["listen"]));
    assert_eq!(ports["internal"], port_of(&config["internalListen"]));
    let advertise = &engine_environment["FLASHCART_CLUSTER__ADVERTISE"];
    assert_eq!(port_after(advertise, "flashcart-nodes"), ports["internal"]);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = container[probe]["httpGet"]["port"].as_str().expect("named");
        assert!(ports.contains_key(port), "{probe} port {port}");
    }
    // Services reach the nodes' named ports; the headless one is the StatefulSet's.
    let labels = &pod["metadata"]["labels"];
    for service in &services {
        assert_eq!(&service["spec"]["selector"], labels);
        for port in service["spec"]["ports"].as_array().expect("ports") {
            let target = port["targetPort"].as_str().expect("a named target");
            assert!(ports.contains_key(target), "target {target}");
        }
    }
    assert!(services.iter().any(|service| {
        service["spec"]["clusterIP"] == "None"
            && service["metadata"]["name"] == stateful_set["spec"]["serviceName"]
    }));
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
}
