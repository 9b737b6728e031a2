import { Option, type Command } from 'commander';
import type { MessageActionFilter, MessageFilter, MessageState } from '@sagabox/core/admin';
import type { ConnectionFlags } from './connection-options.js';

/**
 * The flags {@link addMessageFilterOptions} declares, as commander hands them over: each
 * as the filter's field of the same name, but `--error` for `errorContains`.
 */
export interface MessageFilterFlags extends ConnectionFlags, Pick<MessageFilter, 'queue' | 'state' | 'topic' | 'key' | 'group' | 'id'> {
  /** `--error`: text the last error contains. */
  error?: string;
}

/** What {@link addMessageFilterOptions} declares besides the flags every message command shares. */
export interface MessageFilterOptionsOf {
  /** The states `--state` accepts. */
  states: readonly MessageState[];
  /** Declare `--id` too (commands that take the id as an argument do not). */
  id: boolean;
}

/**
 * Declares the flags that pick messages (`--queue`, `--state`, `--topic`, `--key`,
 * `--group`, `--id`, `--error`), the same for `messages list` and the message actions, so
 * one flag means one thing in every command. Paging and `--limit` stay with each command:
 * their bounds differ.
 */
export function addMessageFilterOptions(command: Command, options: MessageFilterOptionsOf): Command {
  command
    .option('--queue <name>', 'the queue (default: the outbox)')
    .addOption(new Option('--state <state>', 'only this state').choices(options.states))
    .option('--topic <topic>', 'only this topic')
    .option('--key <key>', 'only this ordering key')
    .option('--group <group>', 'only this flow-control group');
  if (options.id) command.option('--id <uuid>', 'only this message id');
  return command.option('--error <text>', 'only messages whose last error contains this text');
}

/** The filter the flags of {@link addMessageFilterOptions} give: only the flags given, `--error` as `errorContains`. */
export function messageFilterOf(flags: MessageFilterFlags): Omit<MessageActionFilter, 'limit'> {
  return {
    schema: flags.schema,
    ...(flags.id !== undefined ? { id: flags.id } : {}),
    ...(flags.queue !== undefined ? { queue: flags.queue } : {}),
    ...(flags.state !== undefined ? { state: flags.state } : {}),
    ...(flags.topic !== undefined ? { topic: flags.topic } : {}),
    ...(flags.key !== undefined ? { key: flags.key } : {}),
    ...(flags.group !== undefined ? { group: flags.group } : {}),
    ...(flags.error !== undefined ? { errorContains: flags.error } : {}),
  };
}
