/**
 * `forkyard startup` (make startup): a systemd unit that starts the native stack at boot, as
 * `pm2 startup` does for PM2. The unit runs the same commands a user types: `forkyard up` in the
 * project directory (supervisord daemonises; systemd follows it by its pidfile and starts the stack
 * again when supervisord dies), `forkyard down` to stop (a graceful drain: the stop timeout exceeds
 * FORKYARD_GRACEFUL_TIMEOUT plus supervisord's own wait), `forkyard reload` for `systemctl reload`.
 * Always native (FORKYARD_DOCKER=0): a Compose stack starts at boot through Docker's own restart
 * policy (docker-compose.yml: restart: unless-stopped).
 */
import { basename, join } from 'node:path'
import type { StackPaths } from './launcher.js'

export interface UnitOptions {
  /** The user the stack runs as (the one running `forkyard startup`). */
  user: string
  group: string
  /** PATH for the stack: nginx and supervisord must be on it, as they were for `make up`. */
  path: string
  node: string
}

/** A unit name from the project directory: forkyard-<directory>, in systemd's allowed characters. */
export function unitName(dir: string): string {
  const base = basename(dir).replace(/[^A-Za-z0-9:_.-]/g, '-').replace(/^-+|-+$/g, '') || 'app'
  return `forkyard-${base}.service`
}

/** systemd quoting for a word of ExecStart= and Environment=: double quotes, \ and " escaped, % doubled. */
function q(word: string): string {
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`
}

export function systemdUnit(s: StackPaths, o: UnitOptions): string {
  const cli = (cmd: string): string => `${q(o.node)} ${q(join(s.home, 'dist/bin/forkyard.js'))} ${cmd}`
  // forkyard down waits for supervisord, which waits up to the server's stopwaitsecs (40 s by
  // default, more with a longer FORKYARD_GRACEFUL_TIMEOUT): leave room for both.
  const stopSeconds = Math.ceil(s.graceMs / 1000) + 60
  return `# Written by forkyard startup for ${s.dir}. Install: see README "Start at boot".
[Unit]
Description=forkyard stack in ${s.dir.replace(/%/g, '%%')} (nginx, server, push, bridge under supervisord)
Documentation=file://${join(s.home, 'README.md').replace(/%/g, '%%')}
Wants=network-online.target
After=network-online.target

[Service]
Type=forking
User=${o.user}
Group=${o.group}
WorkingDirectory=${s.dir.replace(/%/g, '%%')}
Environment=${q(`PATH=${o.path}`)}
Environment=FORKYARD_DOCKER=0
PIDFile=${join(s.runDir, 'supervisord.pid').replace(/%/g, '%%')}
ExecStart=${cli('up')}
ExecReload=${cli('reload')}
ExecStop=${cli('down')}
# supervisord keeps every program alive; this brings supervisord back if it dies itself.
Restart=on-failure
RestartSec=5s
# npm ci and the build on the first start after an update can take a while.
TimeoutStartSec=300
TimeoutStopSec=${stopSeconds}
# After forkyard down, whatever is left in the unit's cgroup is stopped too: no orphan survives.
KillMode=control-group

[Install]
WantedBy=multi-user.target
`
}
