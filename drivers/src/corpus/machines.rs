//! The three machines' physics: how each sensor follows the machine's operating point, and
//! what each fault does to it.
//!
//! Every machine is driven by two operating inputs that are *not* faults: a **regime** (the
//! speed setpoint of a variable-speed drive, or a compressor's pressure setpoint) and a
//! **load** (a valve's opening, the torque of the driven machine, the air demand). Both move
//! every sensor at once, in the proportions physics sets (affinity laws: flow ∝ speed,
//! head ∝ speed², power ∝ speed³), and temperatures follow with first-order lags. A fault
//! breaks one of those relations: that is what a device-level detector must tell apart from
//! an operating change.
//!
//! Only `+ - * /` and `sqrt` are used (no `exp`, `ln`, `sin`): they are exactly rounded by
//! IEEE 754, so a seed gives the same bytes on every platform (x86 and ARM alike).

use super::rng::Rng;

/// A machine kind of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Pump,
    Motor,
    Compressor,
}

/// A fault (or sensor defect) active over an interval, with its progress `r` in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Slow rise of vibration and bearing temperature (spalling, lubricant loss).
    BearingWear,
    /// Pump: suction pressure falls below the NPSH the pump needs: flow drops and turns
    /// noisy, vibration comes in bursts.
    Cavitation,
    /// Motor: a winding or phase fault: current rises without the mechanical power, and
    /// the winding heats.
    Electrical,
    /// Compressor: an internal leak (worn valve, blow-off valve): less air for more current.
    Leak,
    /// A sensor's reading walks away from the truth, linearly.
    Drift,
    /// A sensor repeats its last value.
    Stuck,
}

impl Fault {
    pub const fn as_str(self) -> &'static str {
        match self {
            Fault::BearingWear => "bearing_wear",
            Fault::Cavitation => "cavitation",
            Fault::Electrical => "electrical",
            Fault::Leak => "leak",
            Fault::Drift => "sensor_drift",
            Fault::Stuck => "stuck_sensor",
        }
    }
}

impl Machine {
    pub const ALL: [Machine; 3] = [Machine::Pump, Machine::Motor, Machine::Compressor];

    pub const fn name(self) -> &'static str {
        match self {
            Machine::Pump => "pump",
            Machine::Motor => "motor",
            Machine::Compressor => "compressor",
        }
    }

    /// The sensors, in the order [`State::read`] returns them.
    pub const fn metrics(self) -> [&'static str; 6] {
        match self {
            Machine::Pump => [
                "flow",
                "discharge_pressure",
                "suction_pressure",
                "current",
                "bearing_temp",
                "vibration",
            ],
            Machine::Motor => [
                "current",
                "power",
                "speed",
                "winding_temp",
                "bearing_temp",
                "vibration",
            ],
            Machine::Compressor => [
                "discharge_pressure",
                "flow",
                "current",
                "discharge_temp",
                "oil_temp",
                "vibration",
            ],
        }
    }

    /// Decimals each sensor is written with (about a tenth of its noise).
    pub const fn decimals(self) -> [usize; 6] {
        match self {
            Machine::Pump => [2, 3, 3, 2, 2, 3],
            Machine::Motor => [2, 2, 1, 2, 2, 3],
            Machine::Compressor => [3, 3, 2, 2, 2, 3],
        }
    }

    /// Gaussian noise of each sensor, in its unit.
    const fn noise(self) -> [f64; 6] {
        match self {
            Machine::Pump => [1.0, 0.04, 0.02, 0.3, 0.15, 0.06],
            Machine::Motor => [0.3, 0.25, 2.0, 0.2, 0.15, 0.05],
            Machine::Compressor => [0.02, 0.12, 0.6, 0.3, 0.2, 0.07],
        }
    }

    /// The process fault of this machine (besides bearing wear and sensor faults).
    pub const fn process_fault(self) -> Fault {
        match self {
            Machine::Pump => Fault::Cavitation,
            Machine::Motor => Fault::Electrical,
            Machine::Compressor => Fault::Leak,
        }
    }

    /// The quantum of the coarse sensor of a `healthy` recording, by index: a pump's flow
    /// meter in 2 m³/h steps, a motor's current in 1 A, a compressor's pressure in 0.1 bar.
    pub const fn coarse_sensor(self) -> (usize, f64) {
        match self {
            Machine::Pump => (0, 2.0),
            Machine::Motor => (0, 1.0),
            Machine::Compressor => (0, 0.1),
        }
    }

    /// The sensors of a `sensor` recording: the one that drifts and the one that sticks,
    /// and how far the drift goes by the end of its interval.
    pub const fn sensor_faults(self) -> (usize, f64, usize) {
        match self {
            Machine::Pump => (1, 0.6, 0),
            Machine::Motor => (3, 8.0, 2),
            Machine::Compressor => (3, 10.0, 1),
        }
    }

    /// The regimes (setpoints) a recording moves between: VFD speed fraction for the pump
    /// and motor, pressure setpoint (bar) for the compressor.
    pub const fn regimes(self) -> [f64; 3] {
        match self {
            Machine::Pump | Machine::Motor => [0.7, 0.85, 1.0],
            Machine::Compressor => [7.0, 7.5, 8.0],
        }
    }

    /// The range load changes draw from: valve opening, torque fraction, air demand.
    pub const fn load_range(self) -> (f64, f64) {
        match self {
            Machine::Pump => (0.6, 1.0),
            Machine::Motor => (0.4, 1.0),
            Machine::Compressor => (0.45, 1.0),
        }
    }
}

/// The operating point and the lagged temperatures of one machine.
#[derive(Debug, Clone)]
pub struct State {
    machine: Machine,
    /// Two first-order temperature states (bearing/winding, or discharge/oil).
    temp: [f64; 2],
    /// A stuck sensor's frozen value.
    frozen: Option<f64>,
    started: bool,
}

/// The operating inputs at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    pub regime: f64,
    pub load: f64,
}

/// The faults active at one instant, each with its progress in [0, 1].
#[derive(Debug, Clone, Copy, Default)]
pub struct Active {
    pub bearing: Option<f64>,
    pub process: Option<f64>,
    pub drift: Option<f64>,
    pub stuck: bool,
    pub quantised: bool,
}

/// First-order lag step without `exp`: `x += (target - x) · dt / (tau + dt)`.
fn lag(x: f64, target: f64, dt: f64, tau: f64) -> f64 {
    x + (target - x) * dt / (tau + dt)
}

impl State {
    pub fn new(machine: Machine) -> State {
        State {
            machine,
            temp: [0.0; 2],
            frozen: None,
            started: false,
        }
    }

    /// Advances by `dt` seconds and returns the six readings.
    pub fn read(&mut self, u: Inputs, f: Active, dt: f64, rng: &mut Rng) -> [f64; 6] {
        let m = self.machine;
        let noise = m.noise();
        let mut n = [0.0; 6];
        for (i, x) in n.iter_mut().enumerate() {
            *x = rng.normal() * noise[i];
        }
        let bearing = f.bearing.unwrap_or(0.0);
        let process = f.process.unwrap_or(0.0);
        let (clean, targets, taus) = match m {
            Machine::Pump => pump(u, bearing, process, &mut n, rng),
            Machine::Motor => motor(u, bearing, process),
            Machine::Compressor => compressor(u, bearing, process),
        };
        if !self.started {
            self.temp = targets;
            self.started = true;
        }
        for k in 0..2 {
            self.temp[k] = lag(self.temp[k], targets[k], dt, taus[k]);
        }
        let mut out = clean;
        let temp_at = match m {
            Machine::Pump => [4, 4],
            Machine::Motor => [3, 4],
            Machine::Compressor => [3, 4],
        };
        match m {
            Machine::Pump => out[4] = self.temp[0],
            Machine::Motor | Machine::Compressor => {
                out[temp_at[0]] = self.temp[0];
                out[temp_at[1]] = self.temp[1];
            }
        }
        for (o, e) in out.iter_mut().zip(n) {
            *o += e;
        }
        let (drifting, span, stuck) = m.sensor_faults();
        if let Some(r) = f.drift {
            out[drifting] += span * r;
        }
        if f.stuck {
            let v = *self.frozen.get_or_insert(out[stuck]);
            out[stuck] = v;
        } else {
            self.frozen = None;
        }
        if f.quantised {
            let (i, q) = m.coarse_sensor();
            out[i] = (out[i] / q).round() * q;
        }
        out
    }
}

/// Returns (readings with temperatures left at 0, temperature targets, their time constants).
type Physics = ([f64; 6], [f64; 2], [f64; 2]);

/// A centrifugal pump on a variable-speed drive. `regime` = speed fraction `s`, `load` =
/// valve opening `v`. Flow ∝ s·v, head ∝ s² less the pipe loss, current ∝ hydraulic power.
fn pump(u: Inputs, bearing: f64, cav: f64, n: &mut [f64; 6], rng: &mut Rng) -> Physics {
    let (s, v) = (u.regime, u.load);
    let q = 120.0 * s * v * (1.0 - 0.06 * cav);
    let qn = q / 120.0;
    let suction = 1.8 - 0.4 * qn * qn - 0.7 * cav;
    let head = 7.0 * s * s - 2.5 * qn * qn - 0.3 * cav;
    let discharge = suction + head;
    let current = 12.0 + 40.0 * qn * head / 4.5 * (1.0 - 0.03 * cav);
    // Cavitation: the flow turns noisy (×5) and the bubbles' collapse shakes the casing.
    n[0] *= 1.0 + 4.0 * cav;
    n[1] *= 1.0 + 2.0 * cav;
    let burst = if cav > 0.0 && rng.uniform() < 0.3 {
        cav * (1.0 + 2.0 * rng.uniform())
    } else {
        0.0
    };
    let vibration = 0.8 + 1.4 * s * s + 2.5 * bearing * bearing + burst;
    let temp = 35.0 + 15.0 * s * s + 12.0 * bearing;
    (
        [q, discharge, suction, current, 0.0, vibration],
        [temp, temp],
        [900.0, 900.0],
    )
}

/// An induction motor on a drive. `regime` = speed fraction, `load` = torque fraction.
/// Power = torque × speed; current follows power (plus magnetising current) unless a
/// winding fault adds current that does no work.
fn motor(u: Inputs, bearing: f64, elec: f64) -> Physics {
    let (s, t) = (u.regime, u.load);
    let power = 55.0 * s * t;
    let current = (9.0 + 32.0 * s * t) * (1.0 + 0.12 * elec);
    let speed = 1480.0 * s - 25.0 * t;
    let i = current / 41.0;
    let winding = 40.0 + 50.0 * i * i + 15.0 * elec;
    let bearing_temp = 35.0 + 12.0 * s + 12.0 * bearing;
    let vibration = 0.6 + 1.0 * s * s + 0.3 * t + 2.0 * bearing * bearing;
    (
        [current, power, speed, 0.0, 0.0, vibration],
        [winding, bearing_temp],
        [600.0, 900.0],
    )
}

/// A variable-speed screw compressor holding a pressure setpoint (`regime`, bar) against an
/// air demand (`load`, fraction of capacity). The drive follows demand, so pressure is
/// nearly flat; current ∝ flow × pressure ratio. A leak wastes air: the same delivered flow
/// needs more current, and the discharge runs hotter.
fn compressor(u: Inputs, bearing: f64, leak: f64) -> Physics {
    let (p, d) = (u.regime, u.load);
    let flow = 12.0 * d * (1.0 - 0.15 * leak);
    let current = (20.0 + 80.0 * d * p / 7.5) * (1.0 + 0.06 * leak);
    let discharge_temp = 70.0 + 15.0 * d + 2.0 * (p - 7.0) + 8.0 * leak;
    let oil = 55.0 + 12.0 * d + 4.0 * leak + 8.0 * bearing;
    let vibration = 1.0 + 1.5 * d + 2.5 * bearing * bearing;
    (
        [p, flow, current, 0.0, 0.0, vibration],
        [discharge_temp, oil],
        [300.0, 900.0],
    )
}
