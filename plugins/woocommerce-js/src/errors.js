// The plugin's typed errors: the WIT `plugin-error` cases. A `PluginError` thrown anywhere in the
// adapter ends the call with that error; anything else thrown is a bug and traps (see index.js).

export class PluginError extends Error {
  /**
   * @param {'bad-signature'|'bad-payload'|'unsupported'|'transient'|'permanent'} kind
   * @param {string} message lower case, no full stop
   */
  constructor(kind, message) {
    super(message);
    this.name = 'PluginError';
    this.kind = kind;
  }

  /** The WIT value: `{ tag: 'bad-payload', val: 'missing field `id`' }`. */
  toWit() {
    return { tag: this.kind, val: this.message };
  }

  /** The same error with its message prefixed by the field it is about. */
  inField(field) {
    return new PluginError(this.kind, `\`${field}\`: ${this.message}`);
  }
}

export const badSignature = (message) => new PluginError('bad-signature', message);
export const badPayload = (message) => new PluginError('bad-payload', message);
export const unsupported = (message) => new PluginError('unsupported', message);
export const transient = (message) => new PluginError('transient', message);
export const permanent = (message) => new PluginError('permanent', message);

/** A required field of a payload is absent, `null` or blank. */
export const missing = (field) => badPayload(`missing field \`${field}\``);
