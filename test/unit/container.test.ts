import { describe, expect, it } from 'vitest';
import { containerFromCgroup, containerFromPath } from '../../src/analysis/container.js';

const ID = '3f2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b';
const ID2 = 'aa'.repeat(32);
const UID = '8f4c2a1e-5b3d-4c6e-9a7f-0123456789ab';
const UID_ = UID.replace(/-/g, '_');

const v2 = (path: string) => `0::${path}\n`;

describe('containerFromCgroup: CONTAINERS.md rows (cgroup v2 files)', () => {
  const rows: [string, string, string, string | null, string | null][] = [
    // [what, cgroup path, runtime, id, pod uid]
    ['Docker, systemd driver', `/system.slice/docker-${ID}.scope`, 'docker', ID, null],
    ['Docker, cgroupfs driver', `/docker/${ID}`, 'docker', ID, null],
    ['GitHub Actions job container', `/actions_job/${ID}`, 'docker', ID, null],
    [
      'containerd CRI, systemd driver, burstable',
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      'containerd', ID, UID,
    ],
    [
      'containerd CRI, systemd driver, guaranteed (no QoS slice)',
      `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      'containerd', ID, UID,
    ],
    [
      'containerd, cgroup v1 colon form',
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice:cri-containerd:${ID}`,
      'containerd', ID, UID,
    ],
    ['containerd or others, cgroupfs driver', `/kubepods/besteffort/pod${UID}/${ID}`, 'containerd', ID, UID],
    ['cgroupfs driver, burstable', `/kubepods/burstable/pod${UID}/${ID}`, 'containerd', ID, UID],
    ['cgroupfs driver, guaranteed', `/kubepods/pod${UID}/${ID}`, 'containerd', ID, UID],
    [
      'CRI-O',
      `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`,
      'cri-o', ID, UID,
    ],
    ['Podman rootful', `/machine.slice/libpod-${ID}.scope`, 'podman', ID, null],
    ['Podman rootful, /container below the scope', `/machine.slice/libpod-${ID}.scope/container`, 'podman', ID, null],
    [
      'Podman rootless',
      `/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope`,
      'podman', ID, null,
    ],
    [
      'Podman rootless, own scope',
      '/user.slice/user-1000.slice/user@1000.service/user.slice/podman-4242.scope',
      'podman', null, null,
    ],
    ['ECS on Fargate', '/ecs/0123456789abcdef0123456789abcdef/0123456789abcdef0123456789abcdef-1234567890', 'ecs', '0123456789abcdef0123456789abcdef-1234567890', null],
    ['ECS on EC2', `/ecs/0123456789abcdef0123456789abcdef/${ID}`, 'ecs', ID, null],
    ['containerd namespace layout', `/k8s.io/${ID}`, 'containerd', ID, null],
    ['systemd service', '/system.slice/cilium.service', 'systemd', 'cilium.service', null],
    ['systemd user session', '/user.slice/user-1000.slice/session-3.scope', 'systemd', 'session-3.scope', null],
    [
      'systemd user manager app scope',
      '/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope',
      'systemd', 'vte-spawn-1.scope', null,
    ],
    ['PID 1', '/init.scope', 'systemd', 'init.scope', null],
  ];
  for (const [what, path, runtime, id, podUid] of rows) {
    it(what, () => {
      expect(containerFromCgroup(v2(path))).toEqual({ runtime, id, podUid, cgroup: path });
    });
  }

  it('a plain 0::/ (own cgroup namespace) gives null', () => {
    expect(containerFromCgroup('0::/\n')).toBeNull();
    expect(containerFromCgroup('')).toBeNull();
    expect(containerFromCgroup('garbage\n')).toBeNull();
  });

  it('an unknown path gives null', () => {
    expect(containerFromCgroup(v2('/some/custom/group'))).toBeNull();
  });

  it('skips conmon scopes: they are the monitor, not the container', () => {
    const crio = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`;
    expect(containerFromCgroup(v2(crio))).toEqual({ runtime: 'systemd', id: `crio-conmon-${ID}.scope`, podUid: UID, cgroup: crio });
    const podman = `/machine.slice/libpod-conmon-${ID}.scope`;
    expect(containerFromCgroup(v2(podman))?.runtime).toBe('systemd');
  });

  it('a container nested cgroup is still the container, not a unit', () => {
    const p = `/system.slice/docker-${ID}.scope/init.scope`;
    expect(containerFromCgroup(v2(p))).toMatchObject({ runtime: 'docker', id: ID });
    const k = `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope/system.slice/foo.service`;
    expect(containerFromCgroup(v2(k))).toMatchObject({ runtime: 'containerd', id: ID, podUid: UID });
  });

  it('strips " (deleted)" and CRLF', () => {
    expect(containerFromCgroup(`0::/docker/${ID} (deleted)\r\n`)).toMatchObject({ runtime: 'docker', id: ID, cgroup: `/docker/${ID}` });
  });
});

describe('containerFromCgroup: choosing the line', () => {
  it('cgroup v1: name=systemd first, then memory', () => {
    const text = [
      `12:memory:/docker/${ID2}`,
      `11:cpu,cpuacct:/docker/${ID2}`,
      `1:name=systemd:/system.slice/docker-${ID}.scope`,
    ].join('\n');
    expect(containerFromCgroup(text)).toMatchObject({ runtime: 'docker', id: ID, cgroup: `/system.slice/docker-${ID}.scope` });
    const memOnly = `12:memory:/kubepods/besteffort/pod${UID}/${ID}\n3:cpu:/\n`;
    expect(containerFromCgroup(memOnly)).toMatchObject({ runtime: 'containerd', id: ID, podUid: UID });
  });

  it('prefers the v2 line', () => {
    const text = `12:memory:/docker/${ID2}\n1:name=systemd:/docker/${ID2}\n0::/system.slice/docker-${ID}.scope\n`;
    expect(containerFromCgroup(text)).toMatchObject({ runtime: 'docker', id: ID });
  });

  it('hybrid host: the v1 container wins over the v2 line showing only a service', () => {
    const text = [
      `12:memory:/docker/${ID}`,
      `1:name=systemd:/docker/${ID}`,
      '0::/system.slice/containerd.service',
    ].join('\n');
    expect(containerFromCgroup(text)).toMatchObject({ runtime: 'docker', id: ID, cgroup: `/docker/${ID}` });
  });

  it('hybrid host with a root v2 line falls back to v1', () => {
    const text = `1:name=systemd:/system.slice/sshd.service\n0::/\n`;
    expect(containerFromCgroup(text)).toMatchObject({ runtime: 'systemd', id: 'sshd.service' });
  });

  it('the colon form keeps its colons in the chosen path', () => {
    const p = `/kubepods-besteffort-pod${UID}.slice:cri-containerd:${ID}`;
    expect(containerFromCgroup(`4:memory:${p}\n`)).toEqual({ runtime: 'containerd', id: ID, podUid: UID, cgroup: p });
  });
});

describe('containerFromPath', () => {
  it('needs the full 64 hex digits', () => {
    expect(containerFromPath(`/docker/${ID.slice(0, 12)}`)).toBeNull();
    expect(containerFromPath(`/system.slice/docker-${ID.toUpperCase()}.scope`)?.runtime).toBe('systemd');
  });
});
