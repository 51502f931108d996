// A stand-in exporter thread that dies from an uncaught exception (test/integration/workers.test.ts).
setTimeout(() => {
  throw new Error('boom: simulated crash of an exporter thread');
}, 10);
