// The parts of @kubernetes/client-node the agent uses, from their own modules
// under dist/ rather than the package's root. The root module loads every
// generated API model and client (hundreds of classes) at start-up; these
// paths load the kubeconfig, the watch and the request types alone, which
// keeps the agent's bundle and memory small (scripts/build.mjs). They are
// private paths, checked against client-node 2.0.1: the unit test
// test/unit/agent/client-node.test.ts fails when a release moves them.
export { KubeConfig } from '@kubernetes/client-node/dist/config.js';
export { HttpMethod, RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
export { Watch } from '@kubernetes/client-node/dist/watch.js';
