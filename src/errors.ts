// Errors a user can act on: printed as one line `pinleak: <message>`, exit code 2.
// Anything else is a bug and shows its stack only with --debug.
export class PinleakError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'PinleakError';
  }
}
