/**
 * What a server process costs, read from /proc: CPU time (user + system) and resident memory of a
 * process and all its live descendants (a cluster primary and its workers count as one server).
 * Reading /proc needs nothing from the server, so `btps serve` and the floor are measured the same way.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100

const read = (file: string): string | undefined => {
  try {
    return readFileSync(file, "utf8")
  } catch {
    return undefined // the process (or thread) is gone
  }
}

/** The pid and its live descendants. */
export const family = (pid: number): Array<number> => {
  const all = [pid]
  for (let i = 0; i < all.length; i++) {
    let tasks: Array<string> = []
    try {
      tasks = readdirSync(`/proc/${all[i]}/task`)
    } catch {
      continue
    }
    for (const task of tasks) {
      const children = read(`/proc/${all[i]}/task/${task}/children`)
      if (children !== undefined) for (const child of children.trim().split(/\s+/)) if (child !== "") all.push(Number(child))
    }
  }
  return all
}

/** User + system CPU seconds of one process (fields 14 and 15 of /proc/<pid>/stat). */
const cpuOf = (pid: number): number => {
  const stat = read(`/proc/${pid}/stat`)
  if (stat === undefined) return 0
  // the command name (field 2) may contain spaces: fields are counted after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
}

/** Resident set size of one process in bytes (VmRSS). */
const rssOf = (pid: number): number => {
  const status = read(`/proc/${pid}/status`)
  const kb = status === undefined ? undefined : /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  return kb === undefined ? 0 : Number(kb) * 1024
}

/** CPU seconds used so far by the process and its live descendants. */
export const cpuSeconds = (pid: number): number => family(pid).reduce((sum, p) => sum + cpuOf(p), 0)

/** Resident bytes of the process and its live descendants. */
export const rssBytes = (pid: number): number => family(pid).reduce((sum, p) => sum + rssOf(p), 0)

/**
 * TCP ports the process or its descendants listen on (sockets in state LISTEN in /proc/net/tcp{,6}
 * whose inode is one of their file descriptors). A quiet server (`--log-level warning`) prints no
 * listening line, so this is how the bench learns the port it picked.
 */
export const listeningPorts = (pid: number): Array<number> => {
  const inodes = new Set<string>()
  for (const p of family(pid)) {
    let fds: Array<string> = []
    try {
      fds = readdirSync(`/proc/${p}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${p}/fd/${fd}`))?.[1]
        if (inode !== undefined) inodes.add(inode)
      } catch {
        // closed meanwhile
      }
    }
  }
  const ports: Array<number> = []
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of (read(table) ?? "").split("\n").slice(1)) {
      const fields = row.trim().split(/\s+/)
      if (fields[3] === "0A" && inodes.has(fields[9] ?? "")) ports.push(parseInt(fields[1]!.split(":")[1]!, 16))
    }
  }
  return ports
}
