//! Round-robin over a fleet of endpoints: each request goes to the next endpoint still in the
//! rotation (a retry to another one when there is another); an endpoint that fails several
//! requests in a row is taken out, and the work goes to the others.

/// What the rotation knows of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointState {
    /// Whether it still gets requests.
    pub live: bool,
    /// Requests it failed since its last success.
    pub failures_in_a_row: u32,
    /// Requests it answered.
    pub served: usize,
    /// Its last failure.
    pub last_error: Option<String>,
}

/// The endpoints in rotation.
#[derive(Debug, Clone)]
pub struct Rotation {
    states: Vec<EndpointState>,
    cursor: usize,
    max_failures_in_a_row: u32,
}

impl Rotation {
    /// `n` endpoints, all live; one is taken out after `max_failures_in_a_row` failures in a
    /// row (at least 1).
    pub fn new(n: usize, max_failures_in_a_row: u32) -> Self {
        Self {
            states: vec![
                EndpointState {
                    live: true,
                    ..EndpointState::default()
                };
                n
            ],
            cursor: 0,
            max_failures_in_a_row: max_failures_in_a_row.max(1),
        }
    }

    /// The next live endpoint in turn, other than `avoid` when another is live; `None` when
    /// none is left.
    pub fn pick(&mut self, avoid: Option<usize>) -> Option<usize> {
        let n = self.states.len();
        let order = (0..n).map(|k| (self.cursor + k) % n);
        let chosen = order
            .clone()
            .find(|&i| self.states[i].live && Some(i) != avoid)
            .or_else(|| avoid.filter(|&i| i < n && self.states[i].live))?;
        self.cursor = (chosen + 1) % n;
        Some(chosen)
    }

    /// Endpoint `i` answered a request.
    pub fn succeeded(&mut self, i: usize) {
        let s = &mut self.states[i];
        s.failures_in_a_row = 0;
        s.served += 1;
    }

    /// Endpoint `i` failed a request with `error`; returns whether this took it out of the
    /// rotation.
    pub fn failed(&mut self, i: usize, error: &str) -> bool {
        let max = self.max_failures_in_a_row;
        let s = &mut self.states[i];
        s.failures_in_a_row += 1;
        s.last_error = Some(error.to_string());
        if s.live && s.failures_in_a_row >= max {
            s.live = false;
            return true;
        }
        false
    }

    /// Endpoints still in the rotation.
    pub fn live(&self) -> usize {
        self.states.iter().filter(|s| s.live).count()
    }

    /// Every endpoint's state, in the order given.
    pub fn states(&self) -> &[EndpointState] {
        &self.states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_endpoints_taken_out() {
        let mut r = Rotation::new(3, 2);
        let picks: Vec<_> = (0..4).map(|_| r.pick(None).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        assert!(!r.failed(1, "refused"));
        r.succeeded(1);
        assert!(!r.failed(1, "refused"), "a success resets the count");
        assert!(r.failed(1, "refused"));
        assert!(!r.failed(1, "refused"), "taken out once");
        assert_eq!(r.live(), 2);
        let picks: Vec<_> = (0..4).map(|_| r.pick(None).unwrap()).collect();
        assert_eq!(picks, [2, 0, 2, 0]);
        assert_eq!(r.states()[1].last_error.as_deref(), Some("refused"));
        assert_eq!(r.states()[1].served, 1);
    }

    #[test]
    fn a_retry_goes_elsewhere_when_it_can() {
        let mut r = Rotation::new(2, 3);
        assert_eq!(r.pick(None), Some(0));
        assert_eq!(r.pick(Some(1)), Some(0));
        assert_eq!(r.pick(Some(0)), Some(1));
        r.failed(1, "x");
        r.failed(1, "x");
        r.failed(1, "x");
        assert_eq!(r.pick(Some(0)), Some(0), "the only one left");
        r.failed(0, "x");
        r.failed(0, "x");
        r.failed(0, "x");
        assert_eq!(r.pick(None), None);
        assert_eq!(r.live(), 0);
    }
}
