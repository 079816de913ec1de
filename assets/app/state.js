// What the page knows right now: the channel shown, the messages on screen, the open stream.
// One object shared by the modules, each writing only the fields it owns.
import { readStorage, TOKEN_KEY } from "./storage.js";

export const DEFAULT_SENDERS = ["web-ui", "codex", "claude", "user"];

export const state = {
  token: readStorage(TOKEN_KEY),
  channels: [],
  listening: {}, // channel name -> the listeners the relay reported
  channel: null,
  accepted: false, // the relay answered a page of the current channel, so its name is valid
  lastId: 0, // newest message id the page has for the current channel; the stream goes on after it
  pagedFrom: 0, // first id of the pages loaded whole (the latest and older ones); older load before it
  shown: new Map(), // id -> message, for every message drawn (deleted ones too), so a replayed
  // event is never drawn twice and a reset history (an id now naming another message) is noticed
  expanded: new Set(), // ids the reader expanded; survives re-renders and channel switches
  expandAll: false, // "Expand all" is on: every card, present and future, shows in full
  senders: new Set(DEFAULT_SENDERS),
  stream: null,
  retryTimer: null,
  retryDelay: 1000,
  generation: 0, // bumps on channel switch so late answers for the old channel are dropped
  unseen: 0,
  replyTo: null, // the message the composer answers: {id, target}, or null
};
