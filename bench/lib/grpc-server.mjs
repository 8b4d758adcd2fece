// The gRPC upstream for the gRPC rows, run as its own process: a @grpc/grpc-js server (h2c) with
// one unary method, /bench.Bench/Unary, answering an empty message with grpc-status 0, and
// /bench.Bench/Count, answering how many Unary calls it has answered so far (ASCII decimal), so
// the bench can check that every call a load tool counted as a success reached this server
// (h2load sees only the HTTP status, not grpc-status). Args: host:port.
// It exits when its stdin closes (the bench went away). Measures nothing itself.
import grpc from '@grpc/grpc-js';

const identity = (b) => b;
const unary = (path) => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
});
const service = { Unary: unary('/bench.Bench/Unary'), Count: unary('/bench.Bench/Count') };
const empty = Buffer.alloc(0);
let answered = 0;
const server = new grpc.Server();
server.addService(service, {
  Unary: (_call, cb) => {
    answered++;
    cb(null, empty);
  },
  Count: (_call, cb) => cb(null, Buffer.from(String(answered))),
});
server.bindAsync(process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log('listening');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
