// comet.js as an ES module: import Comet, { subscribe, publish } from "./comet.mjs";
import "./comet.js";

const Comet = globalThis.Comet;
export default Comet;
export const subscribe = Comet.subscribe;
export const publish = Comet.publish;
