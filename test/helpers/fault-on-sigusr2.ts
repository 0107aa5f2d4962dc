// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): SIGUSR2 throws from the event loop, as a bug in any
// handler would. Only a local signal reaches it, never the network; the product never loads it.
process.on('SIGUSR2', () => {
  throw new Error('injected fault (SIGUSR2)');
});
