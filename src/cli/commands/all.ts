/** Imports every command module so it registers itself (one line per module). */
export {};
import "./sim.js";
import "./list.js";
import "./show.js";
import "./bind.js";
import "./sriov.js";
import "./token.js";
import "./explain.js";
import "./audit.js";
import "./args.js";
import "./lab.js";
import "./host.js";
import "./config.js";
import "./install.js";
import "./cdi.js";
import "./k8s.js";
