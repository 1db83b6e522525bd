//! Table tests: the expected manifests are what kompose's documented conversion gives for the
//! same input (io.kompose.service labels, a Service only with ports named by the published
//! port, claims named after the volume with 100Mi ReadWriteOnce, Recreate with volumes,
//! entrypoint → command and command → args).

use super::*;

fn no_files(p: &str) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{p}: not found"),
    ))
}

fn yaml(s: &str) -> Vec<Value> {
    s.split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("expected yaml"))
        .collect()
}

const ARTICLE: &str = include_str!("../../../../shared/seed/manifests/12-compose.yaml");

#[test]
fn the_articles_file() {
    let c = convert(ARTICLE, &no_files).unwrap();
    let expected = yaml(
        r#"
apiVersion: v1
kind: Service
metadata: {name: collector, labels: {io.kompose.service: collector}}
spec:
  ports: [{name: "8080", port: 8080, targetPort: 8080}]
  selector: {io.kompose.service: collector}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: collector, labels: {io.kompose.service: collector}}
spec:
  replicas: 1
  selector: {matchLabels: {io.kompose.service: collector}}
  template:
    metadata: {labels: {io.kompose.service: collector}}
    spec:
      restartPolicy: Always
      containers:
      - name: collector
        image: collector
        ports: [{containerPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pgdata, labels: {io.kompose.service: pgdata}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 100Mi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: postgres, labels: {io.kompose.service: postgres}}
spec:
  replicas: 1
  selector: {matchLabels: {io.kompose.service: postgres}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {io.kompose.service: postgres}}
    spec:
      restartPolicy: Always
      containers:
      - name: postgres
        image: postgres:16
        env: [{name: POSTGRES_PASSWORD, value: events}]
        volumeMounts: [{name: pgdata, mountPath: /var/lib/postgresql/data}]
      volumes: [{name: pgdata, persistentVolumeClaim: {claimName: pgdata}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, labels: {io.kompose.service: redis}}
spec:
  replicas: 1
  selector: {matchLabels: {io.kompose.service: redis}}
  template:
    metadata: {labels: {io.kompose.service: redis}}
    spec:
      restartPolicy: Always
      containers: [{name: redis, image: "redis:7-alpine"}]
"#,
    );
    assert_eq!(c.objects, expected);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("build is not run"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn port_forms() {
    let cases: &[(&str, Result<Port, &str>)] = &[
        (
            "8080",
            Ok(Port {
                host_ip: None,
                published: None,
                target: 8080,
                udp: false,
            }),
        ),
        (
            "8080:80",
            Ok(Port {
                host_ip: None,
                published: Some(8080),
                target: 80,
                udp: false,
            }),
        ),
        (
            "127.0.0.1:8080:80/udp",
            Ok(Port {
                host_ip: Some("127.0.0.1".into()),
                published: Some(8080),
                target: 80,
                udp: true,
            }),
        ),
        (
            "127.0.0.1::80",
            Ok(Port {
                host_ip: Some("127.0.0.1".into()),
                published: None,
                target: 80,
                udp: false,
            }),
        ),
        (
            "[::1]:53:53/UDP",
            Ok(Port {
                host_ip: Some("::1".into()),
                published: Some(53),
                target: 53,
                udp: true,
            }),
        ),
        (
            "3000-3005",
            Err("port range \"3000-3005\" is not supported: list each port"),
        ),
        ("80/sctp", Err("unsupported protocol \"sctp\" (tcp or udp)")),
        ("0", Err("invalid port \"0\"")),
        ("70000", Err("invalid port \"70000\"")),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_port(input),
            want.clone().map_err(String::from),
            "{input}"
        );
    }
}

fn one_service(body: &str) -> Result<Conversion, ComposeError> {
    convert(
        &format!("services:\n  web:\n    image: nginx\n{body}"),
        &no_files,
    )
}

fn deployment(c: &Conversion) -> &Value {
    c.objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
}

#[test]
fn service_and_container_ports() {
    let c = one_service("    ports: [\"127.0.0.1:8080:80/udp\", 9000]\n").unwrap();
    let svc = c.objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "8080-udp", "port": 8080, "targetPort": 80, "protocol": "UDP"},
            {"name": "9000", "port": 9000, "targetPort": 9000}
        ])
    );
    assert_eq!(
        deployment(&c)["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([
            {"containerPort": 80, "protocol": "UDP", "hostIP": "127.0.0.1"},
            {"containerPort": 9000, "protocol": "TCP"}
        ])
    );
}

#[test]
fn environment_forms() {
    let want = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "x=y"}, {"name": "C", "value": "true"}]);
    for body in [
        "    environment: {B: x=y, A: 1, C: true, D: null}\n",
        "    environment: [\"B=x=y\", \"A=1\", \"C=true\", \"D\"]\n",
    ] {
        let c = one_service(body).unwrap();
        assert_eq!(
            deployment(&c)["spec"]["template"]["spec"]["containers"][0]["env"],
            want,
            "{body}"
        );
        assert!(
            c.warnings.iter().any(|w| w.contains("\"D\" has no value")),
            "{:?}",
            c.warnings
        );
    }
}

#[test]
fn env_file_becomes_a_config_map_and_environment_wins() {
    let read = |p: &str| -> std::io::Result<String> {
        assert_eq!(p, "./app.env");
        Ok("# comment\nA=from-file\nexport B=\"quoted\"\n".into())
    };
    let c = convert(
        "services:\n  web:\n    image: nginx\n    env_file: ./app.env\n    environment: {A: inline}\n",
        &read,
    )
    .unwrap();
    assert_eq!(
        c.objects[0],
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "web-app-env", "labels": {"io.kompose.service": "web"}},
               "data": {"A": "from-file", "B": "quoted"}})
    );
    assert_eq!(
        deployment(&c)["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "inline"},
               {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "web-app-env", "key": "B"}}}])
    );
    let e = one_service("    env_file: missing.env\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("service \"web\": env_file \"missing.env\" cannot be read"),
        "{e}"
    );
}

#[test]
fn depends_on_forms() {
    for deps in ["[db]", "{db: {condition: service_healthy}}"] {
        let text = format!("services:\n  web:\n    image: nginx\n    depends_on: {deps}\n  db:\n    image: postgres\n");
        assert!(convert(&text, &no_files).is_ok(), "{deps}");
        let text = format!(
            "services:\n  web:\n    image: nginx\n    depends_on: {}\n",
            deps.replace("db", "nope")
        );
        assert_eq!(
            convert(&text, &no_files).unwrap_err().to_string(),
            "service \"web\": depends on undefined service \"nope\""
        );
    }
}

#[test]
fn command_entrypoint_replicas_healthcheck() {
    let c = one_service(concat!(
        "    entrypoint: [/bin/app]\n",
        "    command: serve --name 'a b'\n",
        "    deploy: {replicas: 3}\n",
        "    healthcheck: {test: [CMD-SHELL, curl -f localhost], interval: 1m30s, timeout: 500ms, retries: 3, start_period: 5s}\n",
    ))
    .unwrap();
    let d = deployment(&c);
    assert_eq!(d["spec"]["replicas"], 3);
    let ctr = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ctr["command"], json!(["/bin/app"]));
    assert_eq!(ctr["args"], json!(["serve", "--name", "a b"]));
    assert_eq!(
        ctr["livenessProbe"],
        json!({"exec": {"command": ["/bin/sh", "-c", "curl -f localhost"]},
               "periodSeconds": 90, "timeoutSeconds": 1, "initialDelaySeconds": 5, "failureThreshold": 3})
    );
}

#[test]
fn restart_no_is_a_pod() {
    let c = one_service("    restart: \"no\"\n").unwrap();
    assert_eq!(c.objects.len(), 1);
    assert_eq!(c.objects[0]["kind"], "Pod");
    assert_eq!(c.objects[0]["spec"]["restartPolicy"], "Never");
}

#[test]
fn refused_and_warned() {
    let cases = [
        (
            "    volumes: [\"./data:/data\"]\n",
            "bind mount \"./data\" is not supported",
        ),
        (
            "    volumes: [{type: bind, source: /srv, target: /data}]\n",
            "bind mount \"/srv\" is not supported",
        ),
        (
            "    volumes: [\"undeclared:/data\"]\n",
            "undefined volume \"undeclared\"",
        ),
        ("    ports: [\"3000-3005:3000-3005\"]\n", "port range"),
        ("    restart: sometimes\n", "unsupported restart"),
        ("    deploy: {replicas: -1}\n", "negative"),
    ];
    for (body, want) in cases {
        let e = one_service(body).unwrap_err().to_string();
        assert!(e.contains(want), "{body}: {e}");
    }
    let c = convert("version: '3'\nnetworks: {}\nx-common: 1\nservices:\n  web:\n    image: nginx\n    privileged: true\n    x-mine: 1\n", &no_files).unwrap();
    assert_eq!(
        c.warnings,
        [
            "unsupported top-level key \"networks\" ignored",
            "service \"web\": unsupported key \"privileged\" ignored"
        ]
    );
    assert!(matches!(
        convert("services: [", &no_files),
        Err(ComposeError::Parse(_))
    ));
}

#[test]
fn anonymous_volume_and_read_only() {
    let c = convert("services:\n  web:\n    image: nginx\n    volumes: [/cache, \"data:/data:ro\"]\nvolumes: {data: {}}\n", &no_files).unwrap();
    let claims: Vec<_> = c
        .objects
        .iter()
        .filter(|o| o["kind"] == "PersistentVolumeClaim")
        .collect();
    assert_eq!(claims[0]["metadata"]["name"], "web-claim0");
    assert_eq!(claims[1]["spec"]["accessModes"], json!(["ReadOnlyMany"]));
    let spec = &deployment(&c)["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][0]["volumeMounts"][1],
        json!({"name": "data", "mountPath": "/data", "readOnly": true})
    );
}

#[test]
fn durations() {
    for (s, want) in [
        ("30s", Ok(30)),
        ("1m30s", Ok(90)),
        ("1500ms", Ok(2)),
        ("1h", Ok(3600)),
        ("x", Err(())),
        ("", Err(())),
    ] {
        assert_eq!(duration_seconds(s).map_err(|_| ()), want, "{s}");
    }
}

#[test]
fn yaml_stream_is_dash_separated() {
    let c = convert(ARTICLE, &no_files).unwrap();
    let text = c.to_yaml();
    assert_eq!(text.matches("\n---\n").count(), c.objects.len() - 1);
}

#[test]
fn expose_gives_a_service_port() {
    let c = one_service("    ports: [\"8080:80\"]\n    expose: [\"80\", 5432]\n").unwrap();
    let svc = c.objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "8080", "port": 8080, "targetPort": 80},
            {"name": "5432", "port": 5432, "targetPort": 5432}
        ])
    );
    let e = one_service("    expose: [\"1:2\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("container port only"), "{e}");
}
