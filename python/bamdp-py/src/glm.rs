//! `bamdp.glm`'s compiled half: the MNIW library of `bamdp::belief::glm` on float64
//! NumPy arrays (python/bamdp/glm.py converts inputs to float64 and documents it).
//! Shapes are checked here; every error is a `ValueError` with the library's message.

use crate::arrays::{c_order, read};
use crate::errors::glm as glm_err;
use bamdp::belief::glm::{self, GlmGrad, GlmStream, MniwPrior, Stats, StreamSampleScratch};
use bamdp::rng::Rng;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

fn matrix<'py>(
    py: Python<'py>,
    v: &[f64],
    rows: usize,
    cols: usize,
) -> Bound<'py, PyArrayDyn<f64>> {
    PyArray1::from_slice(py, v)
        .reshape(vec![rows, cols])
        .expect("length matches the shape")
}

/// A posterior draw: (W `d x m`, Σ `m x m`).
type Draw<'py> = (Bound<'py, PyArrayDyn<f64>>, Bound<'py, PyArrayDyn<f64>>);

fn vector<'py>(py: Python<'py>, v: &[f64]) -> Bound<'py, PyArrayDyn<f64>> {
    PyArray1::from_slice(py, v)
        .reshape(vec![v.len()])
        .expect("length matches the shape")
}

/// A `rows x cols` float64 matrix argument (`cols` None: any width); returns it in C
/// order with its shape.
/// Any array-like of numbers as a float64 NumPy array (the array itself when it is one).
fn as_f64<'py>(obj: &Bound<'py, PyAny>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    if obj.cast::<PyArrayDyn<f64>>().is_ok() {
        return Ok(obj.clone());
    }
    let py = obj.py();
    numpy::get_array_module(py)?
        .call_method1("ascontiguousarray", (obj, "float64"))
        .map_err(|_| {
            crate::errors::invalid(key, &crate::arrays::describe(obj), "an array of numbers")
        })
}

fn read_matrix<'py>(
    obj: &Bound<'py, PyAny>,
    key: &str,
    cols: Option<usize>,
    rows: Option<usize>,
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    let want = format!(
        "a float64 array of shape ({}, {})",
        rows.map_or("N".into(), |r| r.to_string()),
        cols.map_or("d".into(), |c| c.to_string())
    );
    read::<f64>(&as_f64(obj, key)?, key, &want, |s| {
        s.len() == 2 && cols.is_none_or(|c| s[1] == c) && rows.is_none_or(|r| s[0] == r)
    })
}

fn read_vector<'py>(
    obj: &Bound<'py, PyAny>,
    key: &str,
    len: usize,
) -> PyResult<PyReadonlyArrayDyn<'py, f64>> {
    read::<f64>(
        &as_f64(obj, key)?,
        key,
        &format!("a float64 array of shape ({len},)"),
        |s| s == [len],
    )
}

/// Matrix-Normal-Inverse-Wishart prior: W | Σ ~ MN(M0, Λ0^-1, Σ), Σ ~ IW(Ψ0, ν0), with
/// diagonal Λ0 and Ψ0 given by their logs.
#[pyclass(module = "bamdp._native", name = "MniwPrior", from_py_object)]
#[derive(Clone)]
pub struct PyPrior(pub MniwPrior);

#[pymethods]
impl PyPrior {
    #[new]
    fn new(
        m0: &Bound<'_, PyAny>,
        lambda0_log_diag: &Bound<'_, PyAny>,
        psi0_log_diag: &Bound<'_, PyAny>,
        nu0: f64,
    ) -> PyResult<Self> {
        let m0 = read_matrix(m0, "m0", None, None)?;
        let (d, m) = (m0.shape()[0], m0.shape()[1]);
        let l = read_vector(lambda0_log_diag, "lambda0_log_diag", d)?;
        let p = read_vector(psi0_log_diag, "psi0_log_diag", m)?;
        MniwPrior::new(
            d,
            m,
            c_order(&m0).into_owned(),
            c_order(&l).into_owned(),
            c_order(&p).into_owned(),
            nu0,
        )
        .map(PyPrior)
        .map_err(glm_err)
    }

    /// M0 = 0, Λ0 = lambda0 I, Ψ0 = psi0 I.
    #[staticmethod]
    fn isotropic(d: usize, m: usize, lambda0: f64, psi0: f64, nu0: f64) -> PyResult<Self> {
        MniwPrior::isotropic(d, m, lambda0, psi0, nu0)
            .map(PyPrior)
            .map_err(glm_err)
    }

    #[getter]
    fn d(&self) -> usize {
        self.0.d
    }
    #[getter]
    fn m(&self) -> usize {
        self.0.m
    }
    #[getter]
    fn m0<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.m0, self.0.d, self.0.m)
    }
    #[getter]
    fn lambda0_log_diag<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        vector(py, &self.0.lambda0_log_diag)
    }
    #[getter]
    fn psi0_log_diag<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        vector(py, &self.0.psi0_log_diag)
    }
    #[getter]
    fn nu0(&self) -> f64 {
        self.0.nu0
    }
}

/// Additive sufficient statistics C'C, C'Y, Y'Y and N of rows (C, Y).
#[pyclass(module = "bamdp._native", name = "Stats", from_py_object)]
#[derive(Clone)]
pub struct PyStats(pub Stats);

#[pymethods]
impl PyStats {
    /// Empty statistics of `d` features and `m` targets.
    #[new]
    fn new(d: usize, m: usize) -> Self {
        PyStats(Stats::new(d, m))
    }

    /// Statistics of the rows of `c` (`N x d`) and `y` (`N x m`).
    #[staticmethod]
    fn from_rows(c: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<Self> {
        let ca = read_matrix(c, "c", None, None)?;
        let (rows, d) = (ca.shape()[0], ca.shape()[1]);
        let ya = read_matrix(y, "y", None, Some(rows))?;
        let m = ya.shape()[1];
        Stats::from_rows(d, m, &c_order(&ca), &c_order(&ya), rows)
            .map(PyStats)
            .map_err(glm_err)
    }

    /// Adds the rows of `c` (`N x d`) and `y` (`N x m`).
    fn add_rows(&mut self, c: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
        let ca = read_matrix(c, "c", Some(self.0.d), None)?;
        let rows = ca.shape()[0];
        let ya = read_matrix(y, "y", Some(self.0.m), Some(rows))?;
        self.0
            .add_rows(&c_order(&ca), &c_order(&ya), rows)
            .map_err(glm_err)
    }

    /// Adds another set of statistics of the same shape.
    fn merge(&mut self, other: &PyStats) -> PyResult<()> {
        self.0.merge(&other.0).map_err(glm_err)
    }

    #[getter]
    fn d(&self) -> usize {
        self.0.d
    }
    #[getter]
    fn m(&self) -> usize {
        self.0.m
    }
    #[getter]
    fn n(&self) -> f64 {
        self.0.n
    }
    #[getter]
    fn ctc<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.ctc, self.0.d, self.0.d)
    }
    #[getter]
    fn cty<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.cty, self.0.d, self.0.m)
    }
    #[getter]
    fn yty<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.yty, self.0.m, self.0.m)
    }
}

/// Multivariate Student-t: density ∝ (1 + (y-μ)' S^-1 (y-μ) / dof)^(-(dof + m)/2).
#[pyclass(module = "bamdp._native", name = "StudentT")]
pub struct PyStudentT(glm::StudentT);

#[pymethods]
impl PyStudentT {
    #[getter]
    fn dof(&self) -> f64 {
        self.0.dof
    }
    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        vector(py, &self.0.mean)
    }
    /// The scale matrix S (`m x m`).
    #[getter]
    fn scale<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        let m = self.0.mean.len();
        matrix(py, &self.0.scale, m, m)
    }
    /// log density at `y` (length m).
    fn log_density(&self, y: &Bound<'_, PyAny>) -> PyResult<f64> {
        let ya = read_vector(y, "y", self.0.mean.len())?;
        Ok(self.0.log_density(&c_order(&ya)))
    }
}

/// The MNIW posterior after conditioning a prior on statistics.
#[pyclass(module = "bamdp._native", name = "Posterior")]
pub struct PyPosterior(glm::Posterior);

#[pymethods]
impl PyPosterior {
    #[getter]
    fn d(&self) -> usize {
        self.0.d
    }
    #[getter]
    fn m(&self) -> usize {
        self.0.m
    }
    #[getter]
    fn n(&self) -> f64 {
        self.0.n
    }
    /// M_N (`d x m`).
    #[getter]
    fn m_n<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.m_n, self.0.d, self.0.m)
    }
    /// Λ_N (`d x d`).
    #[getter]
    fn lambda_n<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.lambda_n, self.0.d, self.0.d)
    }
    /// Ψ_N (`m x m`).
    #[getter]
    fn psi_n<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.psi_n, self.0.m, self.0.m)
    }
    #[getter]
    fn nu_n(&self) -> f64 {
        self.0.nu_n
    }
    #[getter]
    fn log_det_lambda_n(&self) -> f64 {
        self.0.log_det_lambda_n
    }
    #[getter]
    fn log_det_psi_n(&self) -> f64 {
        self.0.log_det_psi_n
    }
    /// log p(Y | C) of the data the posterior was conditioned on.
    #[getter]
    fn log_marginal(&self) -> f64 {
        self.0.log_marginal
    }
    /// E[Σ | data] (the mode Ψ_N / (ν_N + m + 1) where the mean is infinite).
    fn expected_sigma<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        matrix(py, &self.0.expected_sigma(), self.0.m, self.0.m)
    }
    /// Posterior predictive Student-t of the target row at features `c` (length d).
    fn predictive(&self, c: &Bound<'_, PyAny>) -> PyResult<PyStudentT> {
        let ca = read_vector(c, "c", self.0.d)?;
        self.0
            .predictive(&c_order(&ca))
            .map(PyStudentT)
            .map_err(glm_err)
    }
    /// One exact draw `(W, Sigma)` (`d x m`, `m x m`) from bamdp's random stream `seed`.
    fn sample<'py>(&self, py: Python<'py>, seed: u64) -> Draw<'py> {
        let (w, s) = self.0.sample(&mut Rng::new(seed));
        (
            matrix(py, &w, self.0.d, self.0.m),
            matrix(py, &s, self.0.m, self.0.m),
        )
    }
}

/// The posterior of `prior` given `stats`.
#[pyfunction]
fn posterior(prior: &PyPrior, stats: &PyStats) -> PyResult<PyPosterior> {
    glm::posterior(&prior.0, &stats.0)
        .map(PyPosterior)
        .map_err(glm_err)
}

/// log p(Y | C) under the prior, from the statistics of (C, Y).
#[pyfunction]
fn log_marginal(prior: &PyPrior, stats: &PyStats) -> PyResult<f64> {
    glm::log_marginal(&prior.0, &stats.0).map_err(glm_err)
}

/// The gradient of log p(Y | C) with respect to the statistics and the prior.
#[pyclass(module = "bamdp._native", name = "MarginalGrad")]
pub struct PyGrad(GlmGrad);

#[pymethods]
impl PyGrad {
    #[getter]
    fn ctc<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        let d = self.0.lambda0_log_diag.len();
        matrix(py, &self.0.ctc, d, d)
    }
    #[getter]
    fn cty<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        let (d, m) = (self.0.lambda0_log_diag.len(), self.0.psi0_log_diag.len());
        matrix(py, &self.0.cty, d, m)
    }
    #[getter]
    fn yty<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        let m = self.0.psi0_log_diag.len();
        matrix(py, &self.0.yty, m, m)
    }
    #[getter]
    fn m0<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        let (d, m) = (self.0.lambda0_log_diag.len(), self.0.psi0_log_diag.len());
        matrix(py, &self.0.m0, d, m)
    }
    #[getter]
    fn lambda0_log_diag<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        vector(py, &self.0.lambda0_log_diag)
    }
    #[getter]
    fn psi0_log_diag<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f64>> {
        vector(py, &self.0.psi0_log_diag)
    }
    #[getter]
    fn nu0(&self) -> f64 {
        self.0.nu0
    }
    /// dL/dC for the rows (c, y) the statistics were summed over (`N x d`).
    fn features<'py>(
        &self,
        py: Python<'py>,
        c: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (d, m) = (self.0.lambda0_log_diag.len(), self.0.psi0_log_diag.len());
        let ca = read_matrix(c, "c", Some(d), None)?;
        let rows = ca.shape()[0];
        let ya = read_matrix(y, "y", Some(m), Some(rows))?;
        let mut g = vec![0.0; rows * d];
        glm::features_grad(&c_order(&ca), &c_order(&ya), rows, &self.0, &mut g).map_err(glm_err)?;
        Ok(matrix(py, &g, rows, d))
    }
    /// dL/dY for the rows (c, y) the statistics were summed over (`N x m`).
    fn targets<'py>(
        &self,
        py: Python<'py>,
        c: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (d, m) = (self.0.lambda0_log_diag.len(), self.0.psi0_log_diag.len());
        let ca = read_matrix(c, "c", Some(d), None)?;
        let rows = ca.shape()[0];
        let ya = read_matrix(y, "y", Some(m), Some(rows))?;
        let mut g = vec![0.0; rows * m];
        glm::targets_grad(&c_order(&ca), &c_order(&ya), rows, &self.0, &mut g).map_err(glm_err)?;
        Ok(matrix(py, &g, rows, m))
    }
}

/// log p(Y | C) and its exact gradient.
#[pyfunction]
fn log_marginal_and_grad(prior: &PyPrior, stats: &PyStats) -> PyResult<(f64, PyGrad)> {
    glm::log_marginal_and_grad(&prior.0, &stats.0)
        .map(|(v, g)| (v, PyGrad(g)))
        .map_err(glm_err)
}

/// `rows` independent posteriors advanced one (c, y) pair at a time by rank-1 updates.
#[pyclass(module = "bamdp._native", name = "GlmStream")]
pub struct PyStream {
    stream: GlmStream,
    scratch: StreamSampleScratch,
}

impl PyStream {
    fn row(&self, r: usize) -> PyResult<usize> {
        if r >= self.stream.rows() {
            return Err(crate::errors::invalid(
                "row",
                &r.to_string(),
                &format!("a row index in 0..{}", self.stream.rows()),
            ));
        }
        Ok(r)
    }
}

#[pymethods]
impl PyStream {
    #[new]
    fn new(prior: &PyPrior, rows: usize) -> PyResult<Self> {
        Ok(PyStream {
            stream: GlmStream::new(&prior.0, rows).map_err(glm_err)?,
            scratch: StreamSampleScratch::new(prior.0.d, prior.0.m),
        })
    }
    #[getter]
    fn rows(&self) -> usize {
        self.stream.rows()
    }
    #[getter]
    fn d(&self) -> usize {
        self.stream.d()
    }
    #[getter]
    fn m(&self) -> usize {
        self.stream.m()
    }
    /// Conditions row `r` on one more pair: `c` (length d), `y` (length m).
    fn update_row(&mut self, r: usize, c: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = self.row(r)?;
        let ca = read_vector(c, "c", self.stream.d())?;
        let ya = read_vector(y, "y", self.stream.m())?;
        self.stream.update_row(r, &c_order(&ca), &c_order(&ya));
        Ok(())
    }
    /// Conditions every row on its own pair: `c` (`rows x d`), `y` (`rows x m`).
    fn update(&mut self, c: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<()> {
        let rows = self.stream.rows();
        let ca = read_matrix(c, "c", Some(self.stream.d()), Some(rows))?;
        let ya = read_matrix(y, "y", Some(self.stream.m()), Some(rows))?;
        self.stream.update_all(&c_order(&ca), &c_order(&ya));
        Ok(())
    }
    /// Installs `prior` and resets the rows where `mask` is true to it.
    fn reset_rows(&mut self, prior: &PyPrior, mask: Vec<bool>) -> PyResult<()> {
        self.stream.reset_rows(&prior.0, &mask).map_err(glm_err)
    }
    /// M_N of row r (`d x m`).
    fn mean<'py>(&self, py: Python<'py>, r: usize) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let r = self.row(r)?;
        Ok(matrix(
            py,
            self.stream.mean_row(r),
            self.stream.d(),
            self.stream.m(),
        ))
    }
    /// Λ_N^-1 of row r (`d x d`).
    fn lambda_inv<'py>(&self, py: Python<'py>, r: usize) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let r = self.row(r)?;
        Ok(matrix(
            py,
            self.stream.p_row(r),
            self.stream.d(),
            self.stream.d(),
        ))
    }
    /// Ψ_N of row r (`m x m`).
    fn psi<'py>(&self, py: Python<'py>, r: usize) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let r = self.row(r)?;
        Ok(matrix(
            py,
            self.stream.psi_row(r),
            self.stream.m(),
            self.stream.m(),
        ))
    }
    fn nu(&self, r: usize) -> PyResult<f64> {
        Ok(self.stream.nu_row(self.row(r)?))
    }
    fn n(&self, r: usize) -> PyResult<f64> {
        Ok(self.stream.n_row(self.row(r)?))
    }
    /// E[Σ] of row r (`m x m`).
    fn expected_sigma<'py>(
        &self,
        py: Python<'py>,
        r: usize,
    ) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let r = self.row(r)?;
        let m = self.stream.m();
        let mut s = vec![0.0; m * m];
        self.stream.expected_sigma_row(r, &mut s);
        Ok(matrix(py, &s, m, m))
    }
    /// The predictive Student-t of row r at features `c` (length d).
    fn predictive(&self, r: usize, c: &Bound<'_, PyAny>) -> PyResult<PyStudentT> {
        let r = self.row(r)?;
        let ca = read_vector(c, "c", self.stream.d())?;
        Ok(PyStudentT(
            self.stream.predictive_student_t(r, &c_order(&ca)),
        ))
    }
    /// One exact posterior draw `(W, Sigma)` of row r from random stream `seed`.
    fn sample<'py>(&mut self, py: Python<'py>, r: usize, seed: u64) -> PyResult<Draw<'py>> {
        let r = self.row(r)?;
        let (d, m) = (self.stream.d(), self.stream.m());
        let (mut w, mut s) = (vec![0.0; d * m], vec![0.0; m * m]);
        self.stream
            .sample_row_into(r, &mut Rng::new(seed), &mut w, &mut s, &mut self.scratch)
            .map_err(glm_err)?;
        Ok((matrix(py, &w, d, m), matrix(py, &s, m, m)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPrior>()?;
    m.add_class::<PyStats>()?;
    m.add_class::<PyStudentT>()?;
    m.add_class::<PyPosterior>()?;
    m.add_class::<PyGrad>()?;
    m.add_class::<PyStream>()?;
    m.add_function(wrap_pyfunction!(posterior, m)?)?;
    m.add_function(wrap_pyfunction!(log_marginal, m)?)?;
    m.add_function(wrap_pyfunction!(log_marginal_and_grad, m)?)?;
    Ok(())
}
