//! `tycho import` through the binary, on Compose files of well-known stacks written here: WordPress with
//! MariaDB (Docker's awesome-compose sample), a Jupyter Docker Stacks notebook with a GPU reservation,
//! PostgreSQL with pgAdmin on named volumes, a React/Express/MongoDB development stack (build:, networks:,
//! bind mounts: warnings; two services on one port: an error naming both). The mapped fields and every
//! warning are checked, and the results are applied with the machine's real `kubectl apply -f` (the CRD's
//! schema and CEL rules decide), then run by the controller: a System, and a SystemTemplate with a System
//! made from it.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use tokio::process::Command;
use tycho_model::{ContainerSpec, System, SystemTemplate};

/// The output of one `tycho import`.
struct Import {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Write `compose` as `docker-compose.yml` in a new directory and run `tycho import` on it with only the
/// variables of `env` (the import reads the environment, as Compose does).
async fn import(compose: &str, args: &[&str], env: &[(&str, &str)]) -> (tempfile::TempDir, Import) {
    let dir = tempfile::tempdir().unwrap();
    let run = import_in(dir.path(), compose, args, env).await;
    (dir, run)
}

/// Like [`import`], in the directory `dir`.
async fn import_in(dir: &Path, compose: &str, args: &[&str], env: &[(&str, &str)]) -> Import {
    let file = dir.join("docker-compose.yml");
    std::fs::write(&file, compose).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .arg("import")
        .arg(&file)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Import {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The stderr line that starts with `prefix` (`warning: services.web.build`), or a failure listing all.
#[track_caller]
fn line<'a>(stderr: &'a str, prefix: &str, contains: &str) -> &'a str {
    stderr
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains(contains))
        .unwrap_or_else(|| panic!("no line {prefix:?} … {contains:?} in:\n{stderr}"))
}

fn count(stderr: &str, kind: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{kind}: ")))
        .count()
}

fn container<'a>(s: &'a System, name: &str) -> &'a ContainerSpec {
    s.spec
        .containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in {:?}", s.spec.containers))
}

fn env(c: &ContainerSpec, name: &str) -> Option<String> {
    c.env
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

/// Ports as (port, protocol, exposed).
fn ports(c: &ContainerSpec) -> Vec<(i32, &'static str, bool)> {
    c.ports
        .iter()
        .map(|p| (p.port, p.protocol.as_str(), p.expose))
        .collect()
}

async fn kubectl(cluster: &TestCluster, args: &[&str]) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--namespace", &cluster.namespace])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run kubectl: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[track_caller]
fn applied(result: (bool, String), what: &str) -> String {
    assert!(result.0, "kubectl apply {what}: {}", result.1);
    result.1
}

/// The awesome-compose `wordpress-mysql` sample, with MariaDB.
const WORDPRESS: &str = r#"
services:
  db:
    # We use a mariadb image which supports both amd64 & arm64 architecture
    image: mariadb:10.6.4-focal
    command: '--default-authentication-plugin=mysql_native_password'
    volumes:
      - db_data:/var/lib/mysql
    restart: always
    environment:
      - MYSQL_ROOT_PASSWORD=somewordpress
      - MYSQL_DATABASE=wordpress
      - MYSQL_USER=wordpress
      - MYSQL_PASSWORD=wordpress
    expose:
      - 3306
      - 33060
  wordpress:
    image: wordpress:latest
    volumes:
      - wp_data:/var/www/html
    ports:
      - 80:80
    restart: always
    environment:
      - WORDPRESS_DB_HOST=db
      - WORDPRESS_DB_USER=wordpress
      - WORDPRESS_DB_PASSWORD=wordpress
      - WORDPRESS_DB_NAME=wordpress
volumes:
  db_data:
  wp_data:
"#;

/// A Jupyter Docker Stacks notebook with a GPU, as in the stacks' documentation.
const JUPYTER_GPU: &str = r#"
services:
  notebook:
    image: quay.io/jupyter/pytorch-notebook:cuda12-2024-12-09
    command: start-notebook.py --ServerApp.root_dir=/home/jovyan/work --IdentityProvider.token=${JUPYTER_TOKEN:-letmein}
    ports:
      - "8888:8888"
    environment:
      JUPYTER_ENABLE_LAB: "yes"
      GRANT_SUDO: "no"
    working_dir: /home/jovyan/work
    volumes:
      - work:/home/jovyan/work
    healthcheck:
      test: ["CMD", "wget", "-O-", "--no-verbose", "--tries=1", "http://localhost:8888/api"]
      interval: 15s
    deploy:
      resources:
        limits:
          cpus: "4"
          memory: 16g
        reservations:
          cpus: "1"
          memory: 4g
          devices:
            - driver: nvidia
              count: 1
              capabilities: [gpu]
volumes:
  work:
"#;

/// PostgreSQL with pgAdmin on named volumes (the widely copied compose-postgres stack).
const POSTGRES_PGADMIN: &str = r#"
services:
  postgres:
    container_name: postgres_container
    image: postgres:17
    environment:
      POSTGRES_USER: ${POSTGRES_USER:-postgres}
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set a password}
      PGDATA: /data/postgres
    volumes:
       - postgres:/data/postgres
    ports:
      - "5432:5432"
    networks:
      - postgres
    restart: unless-stopped
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 10s
      retries: 5

  pgadmin:
    container_name: pgadmin_container
    image: dpage/pgadmin4:8
    environment:
      PGADMIN_DEFAULT_EMAIL: ${PGADMIN_DEFAULT_EMAIL:-pgadmin4@pgadmin.org}
      PGADMIN_DEFAULT_PASSWORD: ${PGADMIN_DEFAULT_PASSWORD:-admin}
      PGADMIN_CONFIG_SERVER_MODE: 'False'
    volumes:
       - pgadmin:/var/lib/pgadmin
    ports:
      - "${PGADMIN_PORT:-5050}:80"
    networks:
      - postgres
    restart: unless-stopped
    depends_on:
      - postgres

networks:
  postgres:
    driver: bridge

volumes:
    postgres:
    pgadmin:
"#;

/// A development stack in the style of awesome-compose's react-express-mongodb: images built here, bind
/// mounts of the sources, networks.
const DEV_STACK: &str = r#"
services:
  frontend:
    build:
      context: frontend
      target: development
    image: example/frontend:dev
    ports:
      - 3000:3000
    stdin_open: true
    volumes:
      - ./frontend:/usr/src/app
      - /usr/src/app/node_modules
    restart: always
    networks:
      - react-express
    depends_on:
      - backend
  backend:
    restart: always
    build:
      context: backend
      target: development
    image: example/backend:${TAG}
    environment:
      - MONGO_URL=mongodb://mongo:27017/app
    volumes:
      - ./backend:/usr/src/app
    depends_on:
      - mongo
    networks:
      - express-mongo
      - react-express
    expose:
      - 8000
  mongo:
    restart: always
    image: mongo:4.2.0
    volumes:
      - mongo_data:/data/db
    networks:
      - express-mongo
    expose:
      - 27017
networks:
  react-express:
  express-mongo:
volumes:
  mongo_data:
"#;

#[tokio::test]
async fn wordpress_and_mariadb_become_one_system_without_warnings() {
    let (dir, run) = import(WORDPRESS, &["--name", "wordpress", "--strict"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s: System = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("wordpress"));
    let names: Vec<&str> = s.spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["db", "wordpress"]);
    let db = container(&s, "db");
    assert_eq!(db.image, "mariadb:10.6.4-focal");
    assert_eq!(
        db.args,
        ["--default-authentication-plugin=mysql_native_password"]
    );
    assert!(db.command.is_empty());
    assert_eq!(ports(db), [(3306, "TCP", false), (33060, "TCP", false)]);
    assert_eq!(env(db, "MYSQL_DATABASE").as_deref(), Some("wordpress"));
    let wp = container(&s, "wordpress");
    assert_eq!(ports(wp), [(80, "TCP", true)]);
    // The database is in the same pod: its name becomes 127.0.0.1 (not "localhost", which MySQL
    // clients take for the socket), and the import says so.
    assert_eq!(env(wp, "WORDPRESS_DB_HOST").as_deref(), Some("127.0.0.1"));
    assert_eq!(env(wp, "WORDPRESS_DB_NAME").as_deref(), Some("wordpress"));
    line(
        &run.stderr,
        "note: services.wordpress.environment[0]:",
        "\"db\" → \"127.0.0.1\"",
    );
    let claims: Vec<(&str, &str, Option<&str>)> = s
        .spec
        .volumes
        .iter()
        .map(|v| {
            (
                v.claim.as_str(),
                v.mount_path.as_str(),
                v.container.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        claims,
        [
            ("db-data", "/var/lib/mysql", Some("db")),
            ("wp-data", "/var/www/html", Some("wordpress")),
        ]
    );
    line(
        &run.stderr,
        "note: services.db.volumes[0]:",
        "PersistentVolumeClaim \"db-data\", which must exist",
    );
    line(&run.stderr, "note: volumes.db_data:", "\"db-data\"");
    // restart: always is what a Deployment does: nothing to warn about, so --strict passed.
    assert_eq!(count(&run.stderr, "warning"), 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("# Imported by `tycho import` from "),
        "{}",
        run.stdout
    );
    drop(dir);
}

#[tokio::test]
async fn a_jupyter_notebook_with_a_gpu_reservation() {
    let (_dir, run) = import(
        JUPYTER_GPU,
        &["--name", "notebook"],
        &[("JUPYTER_TOKEN", "s3cret")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s: System = serde_saphyr::from_str(&run.stdout).unwrap();
    let nb = container(&s, "notebook");
    assert_eq!(
        nb.args,
        [
            "start-notebook.py",
            "--ServerApp.root_dir=/home/jovyan/work",
            "--IdentityProvider.token=s3cret"
        ]
    );
    assert_eq!(nb.working_dir.as_deref(), Some("/home/jovyan/work"));
    assert_eq!(env(nb, "JUPYTER_ENABLE_LAB").as_deref(), Some("yes"));
    assert_eq!(env(nb, "GRANT_SUDO").as_deref(), Some("no"));
    assert_eq!(ports(nb), [(8888, "TCP", true)]);
    let limits = nb.limits.clone().unwrap();
    assert_eq!(
        (
            limits.cpus.as_deref(),
            limits.memory.as_deref(),
            limits.gpus
        ),
        (Some("4"), Some("16Gi"), Some(1))
    );
    let requests = nb.requests.clone().unwrap();
    assert_eq!(
        (requests.cpus.as_deref(), requests.memory.as_deref()),
        (Some("1"), Some("4Gi"))
    );
    let http = nb.readiness.clone().and_then(|r| r.http).unwrap();
    assert_eq!((http.path.as_str(), http.port), ("/api", 8888));
    assert_eq!(s.spec.volumes[0].claim, "work");
    line(
        &run.stderr,
        "warning: services.notebook.healthcheck:",
        "interval not kept",
    );
    assert_eq!(count(&run.stderr, "warning"), 1, "{}", run.stderr);

    // Without the variable, the file's default; with --template, a parameter with that default.
    let (_dir, run) = import(JUPYTER_GPU, &["--name", "notebook"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("--IdentityProvider.token=letmein"),
        "{}",
        run.stdout
    );
    let (_dir, run) = import(JUPYTER_GPU, &["--name", "notebook", "--template"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t: SystemTemplate = serde_saphyr::from_str(&run.stdout).unwrap();
    let p = &t.spec.parameters;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].name, "JUPYTER_TOKEN");
    assert_eq!(p[0].default, Some(serde_json::json!("letmein")));
    assert_eq!(
        t.spec.system.containers[0].args[2],
        "--IdentityProvider.token=${JUPYTER_TOKEN}"
    );
    assert_eq!(
        t.spec.system.containers[0]
            .limits
            .as_ref()
            .and_then(|l| l.gpus),
        Some(1)
    );
}

#[tokio::test]
async fn postgres_and_pgadmin_on_named_volumes_with_every_warning() {
    let (_dir, run) = import(
        POSTGRES_PGADMIN,
        &["--name", "pg"],
        &[("POSTGRES_PASSWORD", "pw"), ("PGADMIN_PORT", "8081")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s: System = serde_saphyr::from_str(&run.stdout).unwrap();
    let pg = container(&s, "postgres");
    assert_eq!(env(pg, "POSTGRES_USER").as_deref(), Some("postgres"));
    assert_eq!(env(pg, "POSTGRES_PASSWORD").as_deref(), Some("pw"));
    assert_eq!(env(pg, "PGDATA").as_deref(), Some("/data/postgres"));
    assert_eq!(ports(pg), [(5432, "TCP", true)]);
    assert_eq!(pg.readiness, None);
    let admin = container(&s, "pgadmin");
    assert_eq!(
        env(admin, "PGADMIN_DEFAULT_EMAIL").as_deref(),
        Some("pgadmin4@pgadmin.org")
    );
    assert_eq!(
        env(admin, "PGADMIN_CONFIG_SERVER_MODE").as_deref(),
        Some("False")
    );
    // The container port; the published one (here 8081 from the environment) is the Service's business.
    assert_eq!(ports(admin), [(80, "TCP", true)]);
    let claims: Vec<(&str, &str)> = s
        .spec
        .volumes
        .iter()
        .map(|v| (v.claim.as_str(), v.mount_path.as_str()))
        .collect();
    assert_eq!(
        claims,
        [
            ("postgres", "/data/postgres"),
            ("pgadmin", "/var/lib/pgadmin")
        ]
    );
    for (prefix, text) in [
        ("warning: services.postgres.container_name:", "\"postgres\""),
        ("warning: services.postgres.networks:", "share its network"),
        (
            "warning: services.postgres.healthcheck.test:",
            "\"pg_isready -U postgres\" runs a command",
        ),
        (
            "warning: services.postgres.healthcheck.test:",
            "readiness: {tcp: {port: 5432}}",
        ),
        ("warning: services.pgadmin.container_name:", "\"pgadmin\""),
        ("warning: services.pgadmin.networks:", "share its network"),
        ("warning: services.pgadmin.depends_on:", "start together"),
        ("warning: networks:", "share its network"),
    ] {
        line(&run.stderr, prefix, text);
    }
    assert_eq!(count(&run.stderr, "warning"), 7, "{}", run.stderr);
    line(
        &run.stderr,
        "note: services.postgres.volumes[0]:",
        "PersistentVolumeClaim \"postgres\", which must exist",
    );

    // --strict refuses it, writing nothing; a required variable that is unset is an error naming it.
    let (_dir, strict) = import(
        POSTGRES_PGADMIN,
        &["--name", "pg", "--strict"],
        &[("POSTGRES_PASSWORD", "pw")],
    )
    .await;
    assert_eq!(strict.code, 2, "{}", strict.stderr);
    assert!(strict.stdout.is_empty(), "{}", strict.stdout);
    line(&strict.stderr, "error: ", "7 warning(s) with --strict");
    let (_dir, missing) = import(POSTGRES_PGADMIN, &["--name", "pg"], &[]).await;
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    line(
        &missing.stderr,
        "error: ",
        "services.postgres.environment.POSTGRES_PASSWORD: required variable POSTGRES_PASSWORD is missing a value: set a password",
    );
}

#[tokio::test]
async fn build_networks_and_bind_mounts_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let run = import_in(
        dir.path(),
        DEV_STACK,
        &["-o", &out.display().to_string()],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "-o writes the file: {}", run.stdout);
    let text = std::fs::read_to_string(&out).unwrap();
    let s: System = serde_saphyr::from_str(&text).unwrap();
    // Named after the file's directory, as Compose names its project.
    let dir_name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let want = s.metadata.name.clone().unwrap();
    assert!(
        dir_name
            .to_ascii_lowercase()
            .contains(want.trim_start_matches("c-")),
        "{want} from {dir_name}"
    );
    let names: Vec<&str> = s.spec.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["frontend", "backend", "mongo"]);
    let backend = container(&s, "backend");
    assert_eq!(backend.image, "example/backend:");
    assert_eq!(
        env(backend, "MONGO_URL").as_deref(),
        Some("mongodb://127.0.0.1:27017/app")
    );
    assert_eq!(ports(backend), [(8000, "TCP", false)]);
    assert_eq!(ports(container(&s, "frontend")), [(3000, "TCP", true)]);
    assert_eq!(s.spec.volumes.len(), 1);
    assert_eq!(s.spec.volumes[0].claim, "mongo-data");
    let warnings = [
        ("warning: services.frontend.build:", "runs images only"),
        ("warning: services.frontend.stdin_open:", "not mapped"),
        (
            "warning: services.frontend.volumes[0]:",
            "bind mount of the host path \"./frontend\" at \"/usr/src/app\"",
        ),
        (
            "warning: services.frontend.volumes[1]:",
            "anonymous volume at \"/usr/src/app/node_modules\"",
        ),
        ("warning: services.frontend.networks:", "127.0.0.1"),
        ("warning: services.frontend.depends_on:", "start together"),
        ("warning: services.backend.build:", "runs images only"),
        (
            "warning: services.backend.volumes[0]:",
            "bind mount of the host path \"./backend\"",
        ),
        ("warning: services.backend.networks:", "127.0.0.1"),
        ("warning: services.backend.depends_on:", "start together"),
        ("warning: services.mongo.networks:", "127.0.0.1"),
        ("warning: networks:", "share its network"),
        (
            "warning: ${TAG}:",
            "variable TAG is not set: an empty string is used in services.backend.image",
        ),
    ];
    for (prefix, text) in warnings {
        line(&run.stderr, prefix, text);
    }
    assert_eq!(
        count(&run.stderr, "warning"),
        warnings.len(),
        "{}",
        run.stderr
    );
    line(
        &run.stderr,
        "note: services.backend.environment[0]:",
        "\"mongodb://mongo:27017/app\" → \"mongodb://127.0.0.1:27017/app\"",
    );
}

#[tokio::test]
async fn two_services_on_one_port_is_an_error_naming_both() {
    // awesome-compose's react-express-mongodb runs both the React dev server and Express on 3000: in
    // one pod they cannot both listen there.
    let clash = DEV_STACK.replace("      - 8000\n", "      - 3000\n");
    let (_dir, run) = import(&clash, &[], &[("TAG", "1")]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    line(
        &run.stderr,
        "error: ",
        "services.frontend and services.backend both use port 3000/TCP",
    );
    let (_dir, run) = import(
        "services: {a: {image: x, ports: [\"8080:80\"]}, b: {image: y, ports: [\"8080:81\"]}}",
        &[],
        &[],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    line(
        &run.stderr,
        "error: ",
        "services.a and services.b both publish port 8080/TCP",
    );
}

#[tokio::test]
async fn a_missing_file_and_a_bad_name_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tycho"))
        .args(["import", "/nonexistent/docker-compose.yml"])
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/docker-compose.yml"),
        "{out:?}"
    );
    let (_dir, run) = import(WORDPRESS, &["--name", "Word_Press"], &[]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    line(
        &run.stderr,
        "error: ",
        "\"Word_Press\": must be a DNS-1035 label",
    );
}

/// Write the import's output beside the test's other files and return its path.
fn save(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_system_is_applied_with_kubectl_and_runs() {
    let cluster = TestCluster::start().await;
    let name = format!("wp-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (dir, run) = import(WORDPRESS, &["--name", &name], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The claims the import said must exist.
    let claims = save(
        dir.path(),
        "claims.yaml",
        &["db-data", "wp-data"]
            .map(|c| {
                format!(
                    "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
                )
            })
            .join("---\n"),
    );
    applied(kubectl(&cluster, &["apply", "-f", &claims]).await, "claims");
    let file = save(dir.path(), "system.yaml", &run.stdout);
    let out = applied(kubectl(&cluster, &["apply", "-f", &file]).await, "System");
    assert!(
        out.contains(&format!("system.tycho.dev/{name} created")),
        "{out}"
    );
    // Server-side too, with kubectl's strict field validation: no field the CRD does not know.
    let out = applied(
        kubectl(
            &cluster,
            &[
                "apply",
                "--server-side",
                "--field-manager=import-test",
                "-f",
                &file,
            ],
        )
        .await,
        "System (server-side)",
    );
    assert!(out.contains("serverside-applied"), "{out}");

    let controller = cluster.run_controller(|_| {}).await;
    let systems: Api<System> = cluster.api();
    let phase = eventually(Duration::from_secs(90), || async {
        let st = systems.get(&name).await.ok()?.status?;
        matches!(st.phase?.as_str(), "Ready" | "Progressing").then_some(())
    })
    .await;
    assert!(
        phase.is_some(),
        "{name} starts: {:?}",
        systems.get(&name).await.ok().and_then(|s| s.status)
    );
    let deployments: Api<Deployment> = cluster.api();
    let d = eventually(Duration::from_secs(30), || async {
        deployments.get(&name).await.ok()
    })
    .await
    .expect("the Deployment");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["db", "wordpress"]);
    let claims: Vec<String> = pod
        .volumes
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
        .collect();
    assert!(
        claims.contains(&"db-data".to_string()) && claims.contains(&"wp-data".to_string()),
        "{claims:?}"
    );
    controller.stop().await;
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_template_is_applied_with_kubectl_and_a_system_made_from_it_runs() {
    let cluster = TestCluster::start().await;
    let name = format!("pg-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (dir, run) = import(POSTGRES_PGADMIN, &["--name", &name, "--template"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let t: SystemTemplate = serde_saphyr::from_str(&run.stdout).unwrap();
    let params: Vec<(&str, Option<&serde_json::Value>)> = t
        .spec
        .parameters
        .iter()
        .map(|p| (p.name.as_str(), p.default.as_ref()))
        .collect();
    let s = |x: &str| serde_json::json!(x);
    assert_eq!(
        params,
        // In order of first use (a mapping's keys in order).
        [
            ("POSTGRES_PASSWORD", None),
            ("POSTGRES_USER", Some(&s("postgres"))),
            ("PGADMIN_DEFAULT_EMAIL", Some(&s("pgadmin4@pgadmin.org"))),
            ("PGADMIN_DEFAULT_PASSWORD", Some(&s("admin"))),
        ]
    );
    assert!(
        t.spec.parameters[0]
            .description
            .as_deref()
            .is_some_and(|d| d.contains("set a password")),
        "{:?}",
        t.spec.parameters[0]
    );
    // The published port cannot be a parameter (ports are numbers): its default is used, and said so.
    line(
        &run.stderr,
        "warning: services.pgadmin.ports[0]:",
        "${PGADMIN_PORT} cannot be a template parameter in this field",
    );

    let file = save(dir.path(), "template.yaml", &run.stdout);
    let out = applied(kubectl(&cluster, &["apply", "-f", &file]).await, "template");
    assert!(
        out.contains(&format!("systemtemplate.tycho.dev/{name} created")),
        "{out}"
    );
    let claims = save(
        dir.path(),
        "claims.yaml",
        &["postgres", "pgadmin"]
            .map(|c| {
                format!(
                    "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {c}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n"
                )
            })
            .join("---\n"),
    );
    applied(kubectl(&cluster, &["apply", "-f", &claims]).await, "claims");
    let sys = save(
        dir.path(),
        "system.yaml",
        &format!(
            "apiVersion: tycho.dev/v1alpha1\nkind: System\nmetadata:\n  name: db\nspec:\n  template: {name}\n  parameters:\n    POSTGRES_PASSWORD: hunter2\n"
        ),
    );
    applied(
        kubectl(&cluster, &["apply", "-f", &sys]).await,
        "System from the template",
    );

    let controller = cluster.run_controller(|_| {}).await;
    let systems: Api<System> = cluster.api();
    let status = eventually(Duration::from_secs(90), || async {
        let st = systems.get("db").await.ok()?.status?;
        st.template.as_ref()?;
        matches!(st.phase?.as_str(), "Ready" | "Progressing").then_some(st)
    })
    .await;
    assert!(
        status.is_some(),
        "a System from the imported template starts: {:?}",
        systems.get("db").await.ok().and_then(|s| s.status)
    );
    let deployments: Api<Deployment> = cluster.api();
    let d = eventually(Duration::from_secs(30), || async {
        deployments.get("db").await.ok()
    })
    .await
    .expect("the Deployment");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let pg = pod
        .containers
        .iter()
        .find(|c| c.name == "postgres")
        .unwrap();
    let value = |n: &str| {
        pg.env
            .iter()
            .flatten()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value("POSTGRES_PASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(value("POSTGRES_USER").as_deref(), Some("postgres"));
    controller.stop().await;
    let templates: Api<SystemTemplate> = Api::all(cluster.client.clone());
    let _ = templates.delete(&name, &DeleteParams::default()).await;
    cluster.cleanup().await;
}
