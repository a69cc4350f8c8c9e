#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
/**
 * The revokd command line: `revokd <command> [options]`. Run `revokd help` for the list.
 * Commands other than `serve` work directly on the configured store, so they also work while a server runs
 * (the server picks up their rules and keys within a second or so).
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { isOAuthError, isRevokdError } from '../core/errors.ts';
import { COMMANDS, type CommandContext, HELP } from './commands.ts';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(HELP);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`revokd: unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: { config: { type: 'string' }, ...command.options },
    allowPositionals: true,
    strict: true,
  });
  const config = loadConfig({
    file: values.config as string | undefined,
    overrides: command.overrides?.(values),
  });
  const ctx: CommandContext = {
    config,
    values,
    positionals,
    out: (line) => process.stdout.write(`${line}\n`),
  };
  return command.run(ctx);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const cause = isRevokdError(error) && error.cause instanceof Error ? ` (${error.cause.message})` : '';
    const message =
      isRevokdError(error) ||
      isOAuthError(error) ||
      (error instanceof Error && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) ||
      // Operating-system errors (port in use, unwritable path) say what and where; the stack adds nothing.
      (error instanceof Error && 'syscall' in error)
        ? `${error.message}${cause}`
        : String((error as Error)?.stack ?? error);
    process.stderr.write(`revokd: ${message}\n`);
    process.exitCode = 1;
  },
);
