// The gRPC upstream for the gRPC rows, run as its own process: a @grpc/grpc-js server (h2c) with
// one unary method, /bench.Bench/Unary, answering an empty message. Args: host:port.
// It exits when its stdin closes (the bench went away). Measures nothing itself.
import grpc from '@grpc/grpc-js';

const identity = (b) => b;
const service = {
  Unary: {
    path: '/bench.Bench/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
const empty = Buffer.alloc(0);
const server = new grpc.Server();
server.addService(service, { Unary: (_call, cb) => cb(null, empty) });
server.bindAsync(process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err.message);
    process.exit(1);
  }
  console.log('listening');
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
