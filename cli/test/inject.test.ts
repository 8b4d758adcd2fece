/**
 * `weft inject -f` as a user runs it (the built CLI as a child process): multi-document YAML in,
 * pods and pod templates injected exactly as the webhook injects them, other documents byte for
 * byte; stdin; --injection-config; one clear line and a non-zero exit for bad input.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_INJECTION_CONFIG, injectPod } from '@weft/control-plane';
import { sidecarOptionsFromEnv } from '@weft/sidecar';

const MAIN = join(__dirname, '..', 'src', 'main.js');
const FIXTURES = join(__dirname, '..', '..', '..', 'control-plane', 'test', 'fixtures', 'admission');

function weft(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SERVICE = `# the Service stays exactly as written, comments and flow style included
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
`;
const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.4.2
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: http}}
`;
const CRONJOB = `apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        metadata:
          annotations: {sidecar.weft.dev/proxyCPU: 100m}
        spec:
          restartPolicy: OnFailure
          containers: [{name: report, image: registry.example/report:1}]
`;
const OPTED_OUT = `apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop, annotations: {weft.dev/inject: "false"}}
spec: {containers: [{name: sh, image: busybox}]}
`;

describe('weft inject -f', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-inject-cli-'));
  const file = join(dir, 'app.yaml');
  writeFileSync(file, [SERVICE, DEPLOYMENT, CRONJOB, OPTED_OUT].join('---\n'));

  it('injects every pod template as the webhook would and copies other documents byte for byte', () => {
    const r = weft(['inject', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(SERVICE + '---\n'), 'the Service document is unchanged');
    assert.ok(r.stdout.endsWith('---\n' + OPTED_OUT), 'the opted-out pod is unchanged');
    assert.match(r.stderr, /^weft inject: .*app\.yaml: document 4 \(Pod shop\/debug\) left as it is: opted out: annotation weft\.dev\/inject: "false"\n$/);
    const docs = parseAllDocuments(r.stdout) as ReturnType<typeof parseAllDocuments> & unknown[];
    assert.equal(docs.length, 4);
    const deployment = (docs[1] as any).toJS();
    const input = (parseAllDocuments(DEPLOYMENT) as any)[0].toJS();
    const expected = injectPod(input.spec.template, 'shop', DEFAULT_INJECTION_CONFIG);
    assert.equal(expected.kind, 'injected');
    assert.deepEqual(deployment.spec.template, JSON.parse(JSON.stringify((expected as any).pod)), 'the same function as the webhook');
    assert.deepEqual(deployment.spec.template.spec.initContainers.map((c: any) => c.name), ['weft-init', 'weft-proxy']);
    assert.equal(deployment.spec.template.spec.containers[0].readinessProbe.httpGet.path, '/app-health/web/readyz');
    const cron = (docs[2] as any).toJS();
    const tpl = cron.spec.jobTemplate.spec.template;
    assert.equal(tpl.spec.initContainers[1].restartPolicy, 'Always', 'a native sidecar, so the Job completes');
    assert.equal(tpl.spec.initContainers[1].resources.requests.cpu, '100m', 'the annotation overrides the CPU request');
    assert.doesNotMatch(r.stdout, /[&*]a\d+\b/, 'no YAML anchors or aliases in the output');
  });

  it('reads stdin with -f -, and injecting the output again changes nothing', () => {
    const once = weft(['inject', '-f', '-'], readFileSync(file, 'utf8'));
    assert.equal(once.code, 0, once.stderr);
    const twice = weft(['inject', '-f', '-'], once.stdout);
    assert.equal(twice.code, 0, twice.stderr);
    assert.equal(twice.stdout, once.stdout);
    assert.match(twice.stderr, /document 2 \(Deployment shop\/web\) left as it is: already injected/);
  });

  it('gives the pod of a recorded AdmissionReview the same result as the webhook golden file', () => {
    const review = JSON.parse(readFileSync(join(FIXTURES, 'pod-job.request.json'), 'utf8'));
    const r = weft(['inject', '-f', '-'], JSON.stringify(review.request.object));
    assert.equal(r.code, 0, r.stderr);
    const golden = (parseAllDocuments(readFileSync(join(FIXTURES, 'pod-job.pod.yaml'), 'utf8')) as any)[0].toJS();
    assert.deepEqual((parseAllDocuments(r.stdout) as any)[0].toJS(), golden);
  });

  it('injects the items of a v1 List, as kubectl get -o yaml prints several objects', () => {
    const list = { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [(parseAllDocuments(DEPLOYMENT) as any)[0].toJS(), (parseAllDocuments(SERVICE) as any)[0].toJS()] };
    const r = weft(['inject', '-f', '-'], JSON.stringify(list));
    assert.equal(r.code, 0, r.stderr);
    const out = (parseAllDocuments(r.stdout) as any)[0].toJS();
    assert.deepEqual(out.items[0].spec.template.spec.initContainers.map((c: any) => c.name), ['weft-init', 'weft-proxy']);
    assert.deepEqual(out.items[1], list.items[1], 'the Service item is unchanged');
  });

  it('uses --injection-config', () => {
    const cfg = join(dir, 'config.yaml');
    writeFileSync(cfg, 'image: registry.local/weft:dev\nnativeSidecar: false\n');
    const r = weft(['inject', '-f', file, '--injection-config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    const deployment = (parseAllDocuments(r.stdout) as any)[1].toJS();
    assert.deepEqual(deployment.spec.template.spec.containers.map((c: any) => [c.name, c.image]), [['weft-proxy', 'registry.local/weft:dev'], ['web', 'registry.example/web:1.4.2']]);
  });

  it('invalid YAML: one line with where it is, exit 1, nothing on stdout', () => {
    const r = weft(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nspec: {containers: [\n');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^weft inject: stdin: line \d+, column \d+: .+\n$/);
  });

  it('a bad injector annotation, a missing file and a bad config each give one line and a non-zero exit', () => {
    const bad = weft(['inject', '-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {traffic.weft.dev/excludeOutboundPorts: "http"}}\nspec: {containers: [{name: a, image: x}]}\n');
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.equal(bad.stderr, 'weft inject: stdin: document 1 (Pod default/p): injection refused: annotation traffic.weft.dev/excludeOutboundPorts: "http" is not a port (1-65535)\n');
    const missing = weft(['inject', '-f', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^weft inject: -f .*nope\.yaml: no such file/);
    const cfg = join(dir, 'bad-config.yaml');
    writeFileSync(cfg, 'nativeSidecar: maybe\nproxyUid: root\n');
    const badCfg = weft(['inject', '-f', file, '--injection-config', cfg]);
    assert.equal(badCfg.code, 2);
    assert.equal(badCfg.stdout, '');
    assert.match(badCfg.stderr, /^weft inject: .*bad-config\.yaml: nativeSidecar: must be true or false \(and 1 more\)\nweft inject: proxyUid: must be an integer/);
    const noFile = weft(['inject']);
    assert.equal(noFile.code, 2);
    assert.match(noFile.stderr, /-f FILE is required/);
  });
});

describe('weft control-plane --webhook-address / --injection-config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cp-webhook-'));
  it('refuses bad combinations and a bad InjectionConfig with one line each, exit 2, before starting anything', () => {
    const alone = weft(['control-plane', '--manifests', dir, '--injection-config', join(dir, 'c.yaml')]);
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /^weft control-plane: --injection-config needs --webhook-address/);
    const noCa = weft(['control-plane', '--manifests', dir, '--no-ca', '--webhook-address', '127.0.0.1:0']);
    assert.equal(noCa.code, 2);
    assert.match(noCa.stderr, /^weft control-plane: --webhook-address cannot be combined with --no-ca/);
    writeFileSync(join(dir, 'c.yaml'), 'capture: {inboundPorts: "80,http"}\nimage: 7\n');
    const bad = weft(['control-plane', '--manifests', dir, '--webhook-address', '127.0.0.1:0', '--injection-config', join(dir, 'c.yaml'), '--data-dir', join(tmpdir(), 'weft-cp-webhook-data')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^weft control-plane: .*c\.yaml: image: must be a string \(and 1 more\)\nweft control-plane: capture\.inboundPorts: "http" is not a port/);
  });
});

describe('what the injector writes is what the weft commands accept', () => {
  const POD = {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: 'web-1', namespace: 'shop', annotations: { 'traffic.weft.dev/includeInboundPorts': '8080', 'traffic.weft.dev/excludeOutboundIPRanges': '10.96.0.1,169.254.0.0/16', 'traffic.weft.dev/excludeOutboundPorts': '5432' } },
    spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'x', ports: [{ name: 'http', containerPort: 8080 }], livenessProbe: { httpGet: { path: '/live', port: 'http' } } }] },
  };
  const out = injectPod(POD, 'shop', DEFAULT_INJECTION_CONFIG) as { kind: string; pod: any };

  it('weft-init: weft capture-init takes its arguments (checked with --dry-run)', () => {
    assert.equal(out.kind, 'injected');
    const init = out.pod.spec.initContainers[0];
    assert.deepEqual(init.command.slice(1), ['/opt/weft/cli/dist/src/main.js', 'capture-init']);
    const r = weft(['capture-init', ...init.args, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\*nat$/m);
    assert.match(r.stdout, /-d 10\.96\.0\.1(\/32)? -j RETURN/);
    assert.match(r.stdout, /--dport 5432 -j RETURN/);
    assert.match(r.stdout, /--uid-owner 1337 -j RETURN/);
    assert.match(r.stdout, /--dport 8080 -j WEFT_IN_REDIRECT/, 'includeInboundPorts "8080" captures that port');
  });

  it('weft-proxy: its environment, with the downward API filled in as the kubelet would, is a valid sidecar configuration', () => {
    const proxy = out.pod.spec.initContainers[1];
    const downward: Record<string, string> = { 'metadata.name': 'web-1', 'metadata.namespace': 'shop', 'status.podIP': '10.0.0.7', 'spec.serviceAccountName': 'web' };
    const env = Object.fromEntries(proxy.env.map((e: any) => [e.name, e.value ?? downward[e.valueFrom.fieldRef.fieldPath]]));
    const r = sidecarOptionsFromEnv(env);
    assert.deepEqual(r.errors, []);
    assert.equal(r.options!.podIp, '10.0.0.7');
    assert.equal(r.options!.serviceAccount, 'web');
    assert.equal(r.options!.capture, true);
    assert.deepEqual(r.options!.identity, { tokenPath: '/var/run/secrets/tokens/weft-token', rootCertPath: '/var/run/weft/ca/root-cert.pem', caAddress: 'weft-control-plane.weft-system.svc:15012' });
    assert.ok(r.options!.appProbes, 'the rewritten probe is handed over');
    const mounts = Object.fromEntries(proxy.volumeMounts.map((m: any) => [m.name, m.mountPath]));
    assert.ok(env.WEFT_TOKEN_PATH.startsWith(mounts['weft-token'] + '/'), 'the token path is inside the token volume');
    assert.ok(env.WEFT_CA_ROOT_CERT.startsWith(mounts['weft-root-ca'] + '/'), 'the root path is inside the ConfigMap volume');
    const help = weft(['sidecar', '--help']);
    assert.match(help.stdout, /--drain-timeout/, 'the sidecar takes the --drain-timeout the injector passes');
    assert.deepEqual(proxy.args, ['--drain-timeout', '5000']);
  });
});
