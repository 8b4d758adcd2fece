export * from './result';
export * from './kube-types';
export * from './node-id';
export * from './xds-protos';
export * from './xds-types';
export * from './log';
export * from './kube-parse';
export * from './kube-select';
