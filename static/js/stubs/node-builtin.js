// The wasm backend's ES build imports Node built-ins it only uses under Node; in the browser they are empty.
export default {};
