// The Kubernetes manifests of deploy/k8s (written by `shoal deploy k8s` from config/scale.yaml;
// deploy.k8s_drift checks they are current) as an operator would check them before applying:
//   - the base and both overlays (local, scale), resolved here the way Kustomize does for what
//     they use (resources, namespace, replicas, inline strategic-merge patches of maps and whole
//     lists), validate against the Kubernetes object schemas (the npm package kubernetes-models);
//   - every container has a readiness and a liveness probe, requests and limits, runs as a
//     non-root user on a read-only root filesystem, without privilege escalation and with every
//     capability dropped; every Deployment has a PodDisruptionBudget and an autoscaler;
//   - the NetworkPolicies allow exactly the edges of the dependency graph of config/scale.yaml
//     (gateway -> every service, a service -> its calls:, every service -> NATS and PostgreSQL,
//     NATS node -> NATS node), on the callee's port, and nothing else but DNS and the public
//     gateway port;
//   - the gateway accepts its generated configuration (shoal-proxy --check);
//   - every binary a container runs is one the build produces (SHOAL_BIN_DIR) and that
//     deploy/Dockerfile copies into the image, which runs as the manifests' non-root user.
// The checks themselves are shown to catch a broken manifest (a probe removed, an extra edge).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const src = process.env.SHOAL_SOURCE_DIR ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const binDir = process.env.SHOAL_BIN_DIR ?? path.join(src, "build/bin");
const k8s = path.join(src, "deploy/k8s");

const readDocs = (file) =>
  YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS();
  });

// ---- Kustomize, for what the generated kustomizations use ------------------------------------

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
function merge(into, patch) {
  for (const [k, v] of Object.entries(patch)) {
    if (isMap(v) && isMap(into[k])) merge(into[k], v);
    else into[k] = structuredClone(v);
  }
}

function build(dir) {
  const k = readDocs(path.join(dir, "kustomization.yaml"))[0];
  assert.equal(k.kind, "Kustomization", `${dir}: not a kustomization`);
  const known = new Set(["apiVersion", "kind", "resources", "namespace", "replicas", "patches"]);
  for (const key of Object.keys(k)) assert.ok(known.has(key), `${dir}: ${key} is not resolved by this test`);
  let objs = [];
  for (const r of k.resources ?? []) {
    const p = path.join(dir, r);
    objs = objs.concat(fs.statSync(p).isDirectory() ? build(p) : readDocs(p));
  }
  for (const { name, count } of k.replicas ?? []) {
    const hits = objs.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind) && o.metadata.name === name);
    assert.equal(hits.length, 1, `${dir}: replicas: ${name} names no single workload`);
    hits[0].spec.replicas = count;
  }
  for (const p of k.patches ?? []) {
    assert.ok(p.patch && !p.target, `${dir}: only inline strategic-merge patches are resolved`);
    const doc = YAML.parse(p.patch);
    const hits = objs.filter((o) => o.kind === doc.kind && o.metadata.name === doc.metadata.name);
    assert.equal(hits.length, 1, `${dir}: a patch names no single ${doc.kind} ${doc.metadata.name}`);
    merge(hits[0], doc);
  }
  if (k.namespace) for (const o of objs) o.metadata.namespace = k.namespace;
  return objs;
}

// ---- the checks --------------------------------------------------------------------------------

async function validateSchemas(objs) {
  for (const o of objs) {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : [null, o.apiVersion];
    const mod = await import(`kubernetes-models/${group ? `${group}/` : ""}${version}/${o.kind}`);
    const Model = mod[o.kind];
    assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
    try {
      new Model(o).validate();
    } catch (e) {
      throw new Error(`${o.kind} ${o.metadata.name}: ${e.message}`);
    }
  }
}

const workloads = (objs) => objs.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind));
const appOf = (sel) => sel?.matchLabels?.["app.kubernetes.io/name"];

// Returns the problems an operator would refuse (empty: none).
function operatorProblems(objs) {
  const bad = [];
  const names = new Set(objs.map((o) => `${o.kind}/${o.metadata.name}`));
  for (const w of workloads(objs)) {
    const pod = w.spec.template.spec;
    const where = `${w.kind} ${w.metadata.name}`;
    if (!(pod.securityContext?.runAsUser > 0)) bad.push(`${where}: no non-root runAsUser`);
    if (pod.containers.length === 0) bad.push(`${where}: no container`);
    for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
      const at = `${where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if (!c.readinessProbe) bad.push(`${at}: no readiness probe`);
      if (!c.livenessProbe) bad.push(`${at}: no liveness probe`);
      for (const r of ["cpu", "memory"]) {
        if (!c.resources?.limits?.[r]) bad.push(`${at}: no ${r} limit`);
        if (!c.resources?.requests?.[r]) bad.push(`${at}: no ${r} request`);
      }
      if (sc.runAsNonRoot !== true && pod.securityContext?.runAsNonRoot !== true) bad.push(`${at}: may run as root`);
      if (sc.readOnlyRootFilesystem !== true) bad.push(`${at}: writable root filesystem`);
      if (sc.allowPrivilegeEscalation !== false) bad.push(`${at}: privilege escalation allowed`);
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) bad.push(`${at}: capabilities not dropped`);
      for (const e of c.envFrom ?? [])
        if (e.configMapRef && !names.has(`ConfigMap/${e.configMapRef.name}`)) bad.push(`${at}: no ConfigMap ${e.configMapRef.name}`);
    }
    for (const v of pod.volumes ?? [])
      if (v.configMap && !names.has(`ConfigMap/${v.configMap.name}`)) bad.push(`${where}: no ConfigMap ${v.configMap.name}`);
    const app = appOf(w.spec.selector);
    if (!objs.some((o) => o.kind === "PodDisruptionBudget" && appOf(o.spec.selector) === app) && w.kind === "Deployment")
      bad.push(`${where}: no PodDisruptionBudget`);
    if (w.kind === "Deployment" && !objs.some((o) => o.kind === "HorizontalPodAutoscaler" && o.spec.scaleTargetRef.name === w.metadata.name))
      bad.push(`${where}: no HorizontalPodAutoscaler`);
    if (!objs.some((o) => o.kind === "NetworkPolicy" && appOf(o.spec.podSelector) === app)) bad.push(`${where}: no NetworkPolicy`);
  }
  for (const h of objs.filter((o) => o.kind === "HorizontalPodAutoscaler"))
    if (!(h.spec.minReplicas >= 1 && h.spec.minReplicas <= h.spec.maxReplicas)) bad.push(`HPA ${h.metadata.name}: min > max`);
  if (objs.some((o) => o.kind === "Secret")) bad.push("a Secret is written into the manifests");
  return bad;
}

// The dependency graph of the topology: "from->to" strings.
function dagEdges(topo) {
  const edges = new Set(["nats->nats"]);
  for (const s of topo.services) {
    if (s.name === "gateway") {
      for (const t of topo.services) if (t.name !== "gateway") edges.add(`gateway->${t.name}`);
      continue;
    }
    for (const c of s.calls ?? []) edges.add(`${s.name}->${c}`);
    if (s.db_url) edges.add(`${s.name}->postgres`);
    edges.add(`${s.name}->nats`);
  }
  return edges;
}

const isDns = (peer) => peer.namespaceSelector && peer.podSelector?.matchLabels?.["k8s-app"] === "kube-dns";

// The edges the policies allow, as seen from each side, with the ports of the callee's
// containers; problems for anything that is not a pod-to-pod edge on the callee's port.
function policyEdges(objs) {
  const ports = new Map(); // app -> container ports
  for (const w of workloads(objs))
    ports.set(appOf(w.spec.selector), new Set(w.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort))));
  const ingress = new Set(), egress = new Set(), bad = [];
  const checkPorts = (rule, callee, at) => {
    for (const p of rule.ports ?? [])
      if (!ports.get(callee)?.has(p.port)) bad.push(`${at}: port ${p.port} is not a port of ${callee}`);
    if (!rule.ports?.length) bad.push(`${at}: every port open`);
  };
  for (const np of objs.filter((o) => o.kind === "NetworkPolicy")) {
    const self = appOf(np.spec.podSelector);
    if (!self) bad.push(`NetworkPolicy ${np.metadata.name}: selects more than one app`);
    if (!np.spec.policyTypes?.includes("Ingress") || !np.spec.policyTypes?.includes("Egress"))
      bad.push(`NetworkPolicy ${np.metadata.name}: must restrict ingress and egress`);
    for (const rule of np.spec.ingress ?? []) {
      if (!rule.from) {
        if (self !== "gateway") bad.push(`NetworkPolicy ${self}: open to any source`);
        checkPorts(rule, self, `NetworkPolicy ${self} (public)`);
        continue;
      }
      for (const peer of rule.from) {
        const from = appOf(peer.podSelector);
        if (!from || peer.namespaceSelector || peer.ipBlock) bad.push(`NetworkPolicy ${self}: ingress from outside the shop`);
        else ingress.add(`${from}->${self}`);
      }
      checkPorts(rule, self, `NetworkPolicy ${self} ingress`);
    }
    for (const rule of np.spec.egress ?? []) {
      if (rule.to?.every(isDns)) continue;
      for (const peer of rule.to ?? [{}]) {
        const to = appOf(peer.podSelector);
        if (!to || peer.namespaceSelector || peer.ipBlock) bad.push(`NetworkPolicy ${self}: egress outside the shop`);
        else {
          egress.add(`${self}->${to}`);
          checkPorts(rule, to, `NetworkPolicy ${self} egress to ${to}`);
        }
      }
    }
  }
  return { ingress, egress, bad };
}

function edgeProblems(objs, dag) {
  const { ingress, egress, bad } = policyEdges(objs);
  for (const [side, set] of [["ingress", ingress], ["egress", egress]]) {
    for (const e of set) if (!dag.has(e)) bad.push(`${side} allows ${e}, not an edge of the dependency graph`);
    for (const e of dag) if (!set.has(e)) bad.push(`${side} lacks ${e}, an edge of the dependency graph`);
  }
  return bad;
}

// ---- the tests ---------------------------------------------------------------------------------

const topo = YAML.parse(fs.readFileSync(path.join(src, "config/scale.yaml"), "utf8"));
const dag = dagEdges(topo);
const shapes = {
  base: build(path.join(k8s, "base")),
  local: build(path.join(k8s, "overlays/local")),
  scale: build(path.join(k8s, "overlays/scale")),
};

test("every object validates against the Kubernetes schemas", async () => {
  for (const [name, objs] of Object.entries(shapes)) {
    assert.ok(objs.length > 20, `${name}: ${objs.length} objects`);
    await validateSchemas(objs);
  }
  // The schemas catch a malformed object.
  const broken = structuredClone(shapes.scale.find((o) => o.kind === "Deployment"));
  broken.spec.replicas = "two";
  await assert.rejects(validateSchemas([broken]), /replicas must be integer/);
});

test("every service of the topology and the gateway is deployed, with NATS and PostgreSQL", () => {
  for (const objs of Object.values(shapes)) {
    const deployed = new Set(workloads(objs).map((w) => w.metadata.name));
    for (const s of topo.services) assert.ok(deployed.has(s.name), `${s.name} is not deployed`);
    const nats = objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "nats");
    assert.equal(nats.spec.replicas, 3);
    assert.ok(objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "postgres"));
    const init = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "postgres-init");
    for (const s of topo.services.filter((s) => s.db_url)) {
      const db = new URL(s.db_url).pathname.slice(1);
      assert.match(init.data["01-databases.sql"], new RegExp(`CREATE DATABASE ${db} `), `no database ${db}`);
      const env = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === `${s.name}-env`).data;
      assert.equal(new URL(env.SHOAL_DB__URL).pathname.slice(1), db, `${s.name} uses another database`);
      for (const [k, v] of Object.entries(s.env ?? {})) assert.equal(env[k], String(v), `${s.name}: ${k}`);
    }
  }
  assert.ok(workloads(shapes.local).filter((w) => w.kind === "Deployment").every((w) => w.spec.replicas === 1));
  assert.ok(workloads(shapes.scale).filter((w) => w.kind === "Deployment").every((w) => w.spec.replicas === 2));
  assert.ok(shapes.local.every((o) => o.metadata.namespace === "shoal"));
});

test("every container has probes, limits, a non-root user and a read-only root filesystem", () => {
  for (const [name, objs] of Object.entries(shapes)) assert.deepEqual(operatorProblems(objs), [], name);
  // The check catches a container without a readiness probe or with a writable root.
  const broken = structuredClone(shapes.base);
  const order = broken.find((o) => o.kind === "Deployment" && o.metadata.name === "order");
  delete order.spec.template.spec.containers[0].readinessProbe;
  order.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
  assert.deepEqual(operatorProblems(broken), [
    "Deployment order container order: no readiness probe",
    "Deployment order container order: writable root filesystem",
  ]);
});

test("the network policies allow exactly the edges of the dependency graph", () => {
  assert.ok(dag.has("order->inventory") && dag.has("order->payment") && dag.has("gateway->user"));
  for (const [name, objs] of Object.entries(shapes)) assert.deepEqual(edgeProblems(objs, dag), [], name);
  // An edge the graph does not have (cart -> payment) and a missing one are both reported.
  const broken = structuredClone(shapes.base);
  const pol = (n) => broken.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === n);
  pol("payment").spec.ingress[0].from.push({ podSelector: { matchLabels: { "app.kubernetes.io/name": "cart" } } });
  pol("inventory").spec.ingress[0].from = pol("inventory").spec.ingress[0].from.filter((p) => appOf(p.podSelector) !== "order");
  assert.deepEqual(edgeProblems(broken, dag), [
    "ingress allows cart->payment, not an edge of the dependency graph",
    "ingress lacks order->inventory, an edge of the dependency graph",
  ]);
  // A service's upstream URLs name only its callees.
  for (const cm of shapes.base.filter((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-env"))) {
    const self = cm.metadata.name.replace(/-env$/, "");
    for (const [k, v] of Object.entries(cm.data))
      if (/^SHOAL_UPSTREAMS__.*__URL$/.test(k)) assert.ok(dag.has(`${self}->${new URL(v).hostname}`), `${self}: ${k}`);
  }
});

test("the gateway reaches every cluster through its Service", () => {
  const cm = shapes.base.find((o) => o.kind === "ConfigMap" && o.metadata.name === "gateway-config");
  const gw = YAML.parse(cm.data["gateway.yaml"]);
  const services = new Map(shapes.base.filter((o) => o.kind === "Service").map((s) => [s.metadata.name, s.spec.ports[0].port]));
  for (const [name, cluster] of Object.entries(gw.clusters)) {
    assert.deepEqual(cluster.endpoints, [`${name}:${services.get(name)}`], name);
  }
  assert.equal(gw.service.host, "0.0.0.0");
  // And the gateway itself accepts the file (--check loads and validates it, then exits).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shoal-k8s-gw-"));
  try {
    fs.writeFileSync(path.join(dir, "gateway.yaml"), cm.data["gateway.yaml"]);
    const out = execFileSync(path.join(binDir, "shoal-proxy"), ["--config", path.join(dir, "gateway.yaml"), "--check"], {
      cwd: src,
      encoding: "utf8",
      timeout: 30000,
    });
    assert.match(out, /configuration OK/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("every binary the manifests run is built and copied into the image", () => {
  const dockerfile = fs.readFileSync(path.join(src, "deploy/Dockerfile"), "utf8");
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(froms, ["debian:bookworm-slim", "debian:bookworm-slim"]);
  const loop = dockerfile.match(/for b in ([^;]+);/);
  assert.ok(loop, "the Dockerfile's install loop");
  const copied = new Set(loop[1].replace(/\\\n/g, " ").split(/\s+/).filter(Boolean));
  assert.ok(dockerfile.includes("COPY --from=build /out/bin/ /usr/local/bin/"));
  for (const b of ["shoal", "shoal-proxy", "shoal-shop", "shoal-traces"]) assert.ok(copied.has(b), `${b} is not in the image`);
  const user = dockerfile.match(/^USER (\d+):(\d+)$/m);
  assert.ok(user && Number(user[1]) > 0, "the image runs as a non-root user");
  const ours = workloads(shapes.base).flatMap((w) => w.spec.template.spec.containers).filter((c) => c.image.startsWith("shoal:"));
  assert.ok(ours.length >= topo.services.length);
  for (const c of ours) {
    const bin = c.command[0];
    assert.match(bin, /^\/usr\/local\/bin\//);
    const name = path.basename(bin);
    assert.ok(copied.has(name), `${name} is not copied into the image`);
    assert.ok(fs.existsSync(path.join(binDir, name)), `${name} is not built (${binDir})`);
  }
  for (const w of workloads(shapes.base).filter((w) => w.spec.template.spec.containers[0].image.startsWith("shoal:")))
    assert.equal(w.spec.template.spec.securityContext.runAsUser, Number(user[1]), w.metadata.name);
});
