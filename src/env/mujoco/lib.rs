//! MuJoCo's C library, opened at run time: bamdp builds and runs without MuJoCo, and
//! only the native simulators need it. The library is the one the `mujoco` pip package
//! ships (`libmujoco.so.X` in its package folder), found by asking the Python
//! interpreter (`BAMDP_PYTHON`, default `python3`) where the package is;
//! `BAMDP_MUJOCO_LIB` names the library file (or its folder) instead.
//!
//! Only the functions bamdp calls are bound, and struct fields are read at the byte
//! offsets of [`super::offsets`], generated from the headers of [`MUJOCO_VERSION`]; the
//! library's `mj_version()` is checked against them when it is opened, so a different
//! release is refused rather than misread.

use super::offsets::{self, data as dof, model as mof};
use super::MujocoError;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

/// The MuJoCo release the offsets are generated for and the equality tests run on:
/// metaworld 3.1.1 pins `mujoco==3.3.0`, so the ports are tested against the simulator
/// metaworld itself runs on.
pub const MUJOCO_VERSION: &str = "3.3.0";
/// The one install line that provides the library (and the Python reference).
pub const INSTALL: &str = "pip install mujoco==3.3.0 (or: pip install -r python/requirements.txt)";

type LoadXml =
    unsafe extern "C" fn(*const c_char, *const c_void, *mut c_char, c_int) -> *mut c_void;
type MakeData = unsafe extern "C" fn(*const c_void) -> *mut c_void;
type ModelData = unsafe extern "C" fn(*const c_void, *mut c_void);
type Name2Id = unsafe extern "C" fn(*const c_void, c_int, *const c_char) -> c_int;
type DeleteModel = unsafe extern "C" fn(*mut c_void);
type CopyModel = unsafe extern "C" fn(*mut c_void, *const c_void) -> *mut c_void;
type DeleteData = unsafe extern "C" fn(*mut c_void);
type Version = unsafe extern "C" fn() -> c_int;

/// The opened library and the functions bamdp calls.
pub struct Library {
    /// Where the library was loaded from.
    pub path: PathBuf,
    load_xml: LoadXml,
    make_data: MakeData,
    reset_data: ModelData,
    step: ModelData,
    forward: ModelData,
    rne_post_constraint: ModelData,
    name2id: Name2Id,
    delete_model: DeleteModel,
    delete_data: DeleteData,
    copy_model: CopyModel,
    // Kept open for the life of the process (the function pointers point into it).
    _lib: libloading::Library,
}

static LIBRARY: OnceLock<Result<Library, MujocoError>> = OnceLock::new();

/// The MuJoCo library, opened on first use (see the module doc for where it is found).
pub fn library() -> Result<&'static Library, MujocoError> {
    LIBRARY
        .get_or_init(|| {
            let path = locate()?;
            open(&path)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The library file: `BAMDP_MUJOCO_LIB` (a file, or a folder holding `libmujoco.so.*`),
/// else the one in the installed `mujoco` package's folder.
fn locate() -> Result<PathBuf, MujocoError> {
    if let Ok(p) = std::env::var("BAMDP_MUJOCO_LIB") {
        let p = PathBuf::from(p);
        if p.is_dir() {
            return find_in(&p).ok_or_else(|| MujocoError::Missing {
                what: format!("libmujoco.so.* in BAMDP_MUJOCO_LIB={}", p.display()),
            });
        }
        if !p.is_file() {
            return Err(MujocoError::Missing {
                what: format!("the MuJoCo library BAMDP_MUJOCO_LIB={}", p.display()),
            });
        }
        return Ok(p);
    }
    let dir = super::python_package_dir("mujoco")?;
    find_in(&dir).ok_or_else(|| MujocoError::Missing {
        what: format!(
            "libmujoco.so.* in the mujoco package folder {}",
            dir.display()
        ),
    })
}

/// The `libmujoco.so.<version>` of a folder, preferring [`MUJOCO_VERSION`].
fn find_in(dir: &Path) -> Option<PathBuf> {
    let exact = dir.join(format!("libmujoco.so.{MUJOCO_VERSION}"));
    if exact.is_file() {
        return Some(exact);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libmujoco.so") || n == "libmujoco.dylib")
        })
        .collect();
    found.sort();
    found.pop()
}

fn open(path: &Path) -> Result<Library, MujocoError> {
    let fail = |e: &dyn std::fmt::Display| MujocoError::Missing {
        what: format!("a loadable MuJoCo library at {} ({e})", path.display()),
    };
    // SAFETY: loading MuJoCo runs its (side-effect free) library initialisers only.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| fail(&e))?;
    // SAFETY: each symbol is looked up with the signature of MuJoCo 3.3's mujoco.h;
    // the version check below refuses any other release before one is called further.
    unsafe {
        macro_rules! sym {
            ($name:literal) => {
                *lib.get(concat!($name, "\0").as_bytes())
                    .map_err(|e| fail(&e))?
            };
        }
        let version: Version = sym!("mj_version");
        let v = version();
        if v != offsets::HEADER_VERSION {
            return Err(MujocoError::Version {
                path: path.to_path_buf(),
                found: v,
            });
        }
        install_handlers(&lib).map_err(|e| fail(&e))?;
        Ok(Library {
            path: path.to_path_buf(),
            load_xml: sym!("mj_loadXML"),
            make_data: sym!("mj_makeData"),
            reset_data: sym!("mj_resetData"),
            step: sym!("mj_step"),
            forward: sym!("mj_forward"),
            rne_post_constraint: sym!("mj_rnePostConstraint"),
            name2id: sym!("mj_name2id"),
            delete_model: sym!("mj_deleteModel"),
            delete_data: sym!("mj_deleteData"),
            copy_model: sym!("mj_copyModel"),
            _lib: lib,
        })
    }
}

/// The exit code after a MuJoCo error (not 2: the input was accepted, the simulator
/// failed, e.g. to allocate memory).
pub const MUJOCO_ERROR_EXIT: i32 = 1;

/// MuJoCo's error handler. MuJoCo's default one prints the message, waits for Enter
/// ("Press Enter to exit ...") and exits, which hangs a run with a terminal attached;
/// MuJoCo does not expect a handler to return (the caller's state is broken), so this
/// one prints the message and exits too, at once.
unsafe extern "C" fn on_error(msg: *const c_char) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "MuJoCo error: {}", message(msg));
    std::process::exit(MUJOCO_ERROR_EXIT);
}

/// MuJoCo's warning handler: the message on stderr (the default one prints it on
/// stdout, which `--json` output owns, and appends it to MUJOCO_LOG.TXT in the current
/// folder).
unsafe extern "C" fn on_warning(msg: *const c_char) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "MuJoCo warning: {}", message(msg));
}

fn message(msg: *const c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    // SAFETY: MuJoCo passes a NUL-terminated message.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

type Handler = Option<unsafe extern "C" fn(*const c_char)>;

/// Points MuJoCo's global `mju_user_error` / `mju_user_warning` at [`on_error`] /
/// [`on_warning`], unless a handler is set already (a host program's, e.g. when bamdp
/// runs inside a Python process; MuJoCo's Python bindings use per-thread handlers,
/// which take precedence over these).
///
/// # Safety
/// Called once, while the library is being opened: bamdp makes no MuJoCo call before
/// [`library`] returns, so nothing reads the variables while they are written.
unsafe fn install_handlers(lib: &libloading::Library) -> Result<(), libloading::Error> {
    for (name, handler) in [
        (
            &b"mju_user_error\0"[..],
            on_error as unsafe extern "C" fn(*const c_char),
        ),
        (&b"mju_user_warning\0"[..], on_warning),
    ] {
        // SAFETY: both are `void (*)(const char*)` variables of mujoco.h.
        unsafe {
            let slot: *mut Handler = *lib.get::<*mut Handler>(name)?;
            if (*slot).is_none() {
                *slot = Some(handler);
            }
        }
    }
    Ok(())
}

/// A compiled model (`mjModel`). Immutable once shared, so one model can serve all
/// the rows simulating it, on any thread; a row that moves bodies or sites at reset
/// (as MetaWorld's task classes do) owns a copy ([`Model::try_clone`]).
pub struct Model {
    ptr: NonNull<c_void>,
    lib: &'static Library,
}

// SAFETY: MuJoCo only reads an mjModel while stepping (`const mjModel*`), and bamdp
// writes to a model only through `&mut Model` (while building it, or a row's own copy
// reached through `Data::model_mut`, which requires the only reference).
unsafe impl Send for Model {}
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the pointer came from mj_loadXML and every Data holding an Arc to
        // this model is gone.
        unsafe { (self.lib.delete_model)(self.ptr.as_ptr()) }
    }
}

/// Reads a `T` at byte `offset` of a MuJoCo struct.
///
/// # Safety
/// `base + offset` must hold a `T` (an offset of [`super::offsets`] with its type).
#[inline]
unsafe fn field<T: Copy>(base: NonNull<c_void>, offset: usize) -> T {
    unsafe {
        (base.as_ptr() as *const u8)
            .add(offset)
            .cast::<T>()
            .read_unaligned()
    }
}

impl Model {
    /// Compiles the MJCF file at `path`.
    pub fn from_xml(path: &Path) -> Result<Model, MujocoError> {
        let lib = library()?;
        let c =
            CString::new(path.to_string_lossy().as_bytes()).map_err(|_| MujocoError::Model {
                path: path.to_path_buf(),
                message: "path contains a NUL byte".into(),
            })?;
        let mut err = [0 as c_char; 1000];
        // SAFETY: a NUL-terminated path, no VFS, and an error buffer of the size given.
        let ptr = unsafe { (lib.load_xml)(c.as_ptr(), std::ptr::null(), err.as_mut_ptr(), 1000) };
        match NonNull::new(ptr) {
            Some(ptr) => {
                let mut model = Model { ptr, lib };
                model.skip_bounding_volume_marks();
                Ok(model)
            }
            None => Err(MujocoError::Model {
                path: path.to_path_buf(),
                // SAFETY: MuJoCo writes a NUL-terminated message into the buffer.
                message: unsafe { CStr::from_ptr(err.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            }),
        }
    }

    /// Turns off `vis.global.bvactive`. With it on (MuJoCo's default), every collision
    /// pass clears one byte per bounding-volume node (`d->bvh_active`), which only a
    /// viewer reads: MetaWorld's meshes have 133,936 nodes, so that `memset` was ~10% of
    /// an ML10 training run's time. Physics does not read the flag (the equality tests
    /// against metaworld, which leaves it on, hold bit for bit).
    fn skip_bounding_volume_marks(&mut self) {
        // SAFETY: vis.global.bvactive is a C int inside the model struct, and `&mut self`
        // is the only reference.
        unsafe {
            (self.ptr.as_ptr() as *mut u8)
                .add(mof::vis_global_bvactive)
                .cast::<c_int>()
                .write_unaligned(0)
        }
    }

    /// Whether collision passes mark active bounding volumes (`vis.global.bvactive`).
    pub fn marks_bounding_volumes(&self) -> bool {
        // SAFETY: vis.global.bvactive is a C int.
        let v: c_int = unsafe { field(self.ptr, mof::vis_global_bvactive) };
        v != 0
    }

    /// A deep copy (`mj_copyModel`), for a row that changes its model.
    pub fn try_clone(&self) -> Result<Model, MujocoError> {
        // SAFETY: a NULL destination makes MuJoCo allocate the copy; the source is valid.
        let ptr = unsafe { (self.lib.copy_model)(std::ptr::null_mut(), self.ptr.as_ptr()) };
        NonNull::new(ptr)
            .map(|ptr| Model { ptr, lib: self.lib })
            .ok_or_else(|| MujocoError::Model {
                path: PathBuf::new(),
                message: "mj_copyModel could not allocate the copy".into(),
            })
    }

    /// The bytes this model holds: the `mjModel` struct and its buffer (`nbuffer`,
    /// every array of the model: meshes, textures, BVHs, ...), which `mj_copyModel`
    /// allocates again for every copy.
    pub fn bytes(&self) -> usize {
        // SAFETY: mjModel.nbuffer is a size_t.
        let buffer: usize = unsafe { field(self.ptr, mof::nbuffer) };
        mof::SIZE + buffer
    }

    fn int(&self, offset: usize) -> usize {
        // SAFETY: `offset` is one of the `int` size fields of mjModel.
        let v: c_int = unsafe { field(self.ptr, offset) };
        v.max(0) as usize
    }
    pub fn nq(&self) -> usize {
        self.int(mof::nq)
    }
    pub fn nv(&self) -> usize {
        self.int(mof::nv)
    }
    pub fn nu(&self) -> usize {
        self.int(mof::nu)
    }
    pub fn nbody(&self) -> usize {
        self.int(mof::nbody)
    }
    pub fn ngeom(&self) -> usize {
        self.int(mof::ngeom)
    }
    pub fn nsite(&self) -> usize {
        self.int(mof::nsite)
    }
    pub fn nmocap(&self) -> usize {
        self.int(mof::nmocap)
    }
    pub fn neq(&self) -> usize {
        self.int(mof::neq)
    }
    /// `opt.timestep`.
    pub fn timestep(&self) -> f64 {
        // SAFETY: opt.timestep is an mjtNum (f64).
        unsafe { field(self.ptr, mof::opt_timestep) }
    }

    /// An `len`-long array that an mjModel pointer field at `offset` points to.
    fn array<T>(&self, offset: usize, len: usize) -> &[T] {
        // SAFETY: the field at `offset` points to `len` values of T owned by the model.
        unsafe {
            let p: *const T = field(self.ptr, offset);
            if len == 0 || p.is_null() {
                &[]
            } else {
                std::slice::from_raw_parts(p, len)
            }
        }
    }
    /// `qpos0`: the reference configuration (the state `mj_resetData` restores).
    pub fn qpos0(&self) -> &[f64] {
        self.array(mof::qpos0, self.nq())
    }
    /// `body_mocapid`: the mocap index of each body (-1 if it is not a mocap body).
    pub fn body_mocapid(&self) -> &[c_int] {
        self.array(mof::body_mocapid, self.nbody())
    }
    /// `eq_type`: the type of each equality constraint.
    pub fn eq_type(&self) -> &[c_int] {
        self.array(mof::eq_type, self.neq())
    }
    /// `eq_data` of equality constraint `i`, writable while the model is being set up
    /// (`&mut self`: before it is shared).
    pub fn eq_data_mut(&mut self, i: usize) -> &mut [f64] {
        let n = self.neq();
        assert!(i < n, "eq_data_mut: constraint {i} of {n}");
        // SAFETY: eq_data holds neq * mjNEQDATA values; we hold the only reference.
        unsafe {
            let p: *mut f64 = field(self.ptr, mof::eq_data);
            std::slice::from_raw_parts_mut(p.add(i * offsets::NEQDATA), offsets::NEQDATA)
        }
    }

    /// A writable `len`-long array of an mjModel pointer field at `offset`.
    fn array_mut<T>(&mut self, offset: usize, len: usize) -> &mut [T] {
        // SAFETY: the field points to `len` values of T owned by the model, and
        // `&mut self` is the only reference to it.
        unsafe {
            let p: *mut T = field(self.ptr, offset);
            if len == 0 || p.is_null() {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(p, len)
            }
        }
    }
    fn njnt(&self) -> usize {
        self.int(mof::njnt)
    }
    /// `body_pos` of body `b` (its frame's offset from its parent), writable.
    pub fn body_pos_mut(&mut self, b: usize) -> &mut [f64] {
        let n = self.nbody();
        &mut self.array_mut(mof::body_pos, 3 * n)[3 * b..3 * b + 3]
    }
    /// `body_pos` of body `b`.
    pub fn body_pos(&self, b: usize) -> &[f64] {
        &self.array(mof::body_pos, 3 * self.nbody())[3 * b..3 * b + 3]
    }
    /// `site_pos` of site `s` (its offset from its body).
    pub fn site_pos(&self, s: usize) -> &[f64] {
        &self.array(mof::site_pos, 3 * self.nsite())[3 * s..3 * s + 3]
    }
    /// `site_pos` of site `s`, writable.
    pub fn site_pos_mut(&mut self, s: usize) -> &mut [f64] {
        let n = self.nsite();
        &mut self.array_mut(mof::site_pos, 3 * n)[3 * s..3 * s + 3]
    }
    /// `jnt_qposadr` of joint `j`: where its coordinates start in `qpos`.
    pub fn jnt_qposadr(&self, j: usize) -> usize {
        self.array::<c_int>(mof::jnt_qposadr, self.njnt())[j].max(0) as usize
    }
    /// `jnt_dofadr` of joint `j`: where its velocities start in `qvel`.
    pub fn jnt_dofadr(&self, j: usize) -> usize {
        self.array::<c_int>(mof::jnt_dofadr, self.njnt())[j].max(0) as usize
    }

    /// The id of the named object of type `obj` (an `OBJ_*` of [`super::offsets`]).
    pub fn id(&self, obj: i32, name: &str) -> Option<usize> {
        let c = CString::new(name).ok()?;
        // SAFETY: a valid model and NUL-terminated name.
        let id = unsafe { (self.lib.name2id)(self.ptr.as_ptr(), obj, c.as_ptr()) };
        (id >= 0).then_some(id as usize)
    }
}

/// The simulation state of one row (`mjData`), bound to its model.
pub struct Data {
    ptr: NonNull<c_void>,
    model: Arc<Model>,
}

// SAFETY: an mjData is owned by one row and only touched through `&mut self` or `&self`.
unsafe impl Send for Data {}

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: the pointer came from mj_makeData.
        unsafe { (self.model.lib.delete_data)(self.ptr.as_ptr()) }
    }
}

macro_rules! data_array {
    ($(#[$doc:meta])* $get:ident, $get_mut:ident, $off:ident, $len:expr) => {
        $(#[$doc])*
        pub fn $get(&self) -> &[f64] {
            let n = $len(&self.model);
            // SAFETY: the mjData field points to `n` mjtNum values.
            unsafe { std::slice::from_raw_parts(field::<*const f64>(self.ptr, dof::$off), n) }
        }
        $(#[$doc])*
        pub fn $get_mut(&mut self) -> &mut [f64] {
            let n = $len(&self.model);
            // SAFETY: as above, and `&mut self` is the only reference to this mjData.
            unsafe { std::slice::from_raw_parts_mut(field::<*mut f64>(self.ptr, dof::$off), n) }
        }
    };
}

impl Data {
    /// Fresh simulation data for `model` (in its reference configuration).
    pub fn new(model: Arc<Model>) -> Result<Data, MujocoError> {
        // SAFETY: a valid model.
        let ptr = unsafe { (model.lib.make_data)(model.ptr.as_ptr()) };
        let ptr = NonNull::new(ptr).ok_or_else(|| MujocoError::Model {
            path: PathBuf::new(),
            message: "mj_makeData could not allocate the simulation data".into(),
        })?;
        Ok(Data { ptr, model })
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// The bytes this data holds in memory (not counting its model): the `mjData`
    /// struct, its main buffer (`nbuffer`), and of its arena (`narena` bytes reserved
    /// for contacts, constraints and the solver's stack) only the part used so far
    /// (`maxuse_arena` + `maxuse_stack`): memory allocated but never written takes no
    /// room, and a MetaWorld model reserves 14 MiB of arena and uses well under 1 MiB.
    /// The whole struct counts (~159 KiB, mostly the solver statistics of `mjNISLAND`
    /// islands): `mj_resetData`, also run by `mj_makeData`, zeroes all of it.
    pub fn bytes(&self) -> usize {
        // SAFETY: nbuffer, maxuse_arena and maxuse_stack are size_t fields of mjData.
        let (buffer, arena, stack): (usize, usize, usize) = unsafe {
            (
                field(self.ptr, dof::nbuffer),
                field(self.ptr, dof::maxuse_arena),
                field(self.ptr, dof::maxuse_stack),
            )
        };
        dof::SIZE + buffer + arena + stack
    }
    /// The model, writable when this data holds the only reference to it (a row's own
    /// copy); `None` when it is shared.
    pub fn model_mut(&mut self) -> Option<&mut Model> {
        Arc::get_mut(&mut self.model)
    }
    /// `mj_resetData`.
    pub fn reset(&mut self) {
        // SAFETY: model and data belong together.
        unsafe { (self.model.lib.reset_data)(self.model.ptr.as_ptr(), self.ptr.as_ptr()) }
    }
    /// `mj_step`, `n` times.
    pub fn step(&mut self, n: usize) {
        for _ in 0..n {
            // SAFETY: model and data belong together.
            unsafe { (self.model.lib.step)(self.model.ptr.as_ptr(), self.ptr.as_ptr()) }
        }
    }
    /// `mj_forward`.
    pub fn forward(&mut self) {
        // SAFETY: model and data belong together.
        unsafe { (self.model.lib.forward)(self.model.ptr.as_ptr(), self.ptr.as_ptr()) }
    }
    /// `mj_rnePostConstraint` (fills `cfrc_ext`, which `mj_step` leaves stale).
    pub fn rne_post_constraint(&mut self) {
        // SAFETY: model and data belong together.
        unsafe { (self.model.lib.rne_post_constraint)(self.model.ptr.as_ptr(), self.ptr.as_ptr()) }
    }
    /// The contacts of the last forward pass, each as its two geoms and the constraint
    /// force on its first direction (`efc_force[efc_address]`, the normal force).
    pub fn contacts(&self) -> impl Iterator<Item = ([usize; 2], f64)> + '_ {
        // SAFETY: `ncon` is an int of mjData; `contact` points to `ncon` mjContact
        // structs whose `geom` (int[2]) and `efc_address` (int) sit at the offsets of
        // [`offsets::contact`]; `efc_force` holds every row an `efc_address` names.
        let n: c_int = unsafe { field(self.ptr, dof::ncon) };
        let base: *const u8 = unsafe { field(self.ptr, dof::contact) };
        let force: *const f64 = unsafe { field(self.ptr, dof::efc_force) };
        (0..n.max(0) as usize).map(move |i| unsafe {
            let c = base.add(i * offsets::contact::SIZE);
            let g0 = c
                .add(offsets::contact::geom)
                .cast::<c_int>()
                .read_unaligned();
            let g1 = c
                .add(offsets::contact::geom + 4)
                .cast::<c_int>()
                .read_unaligned();
            let adr = c
                .add(offsets::contact::efc_address)
                .cast::<c_int>()
                .read_unaligned();
            // A contact without a constraint row (address -1) has no force here;
            // NumPy indexing would read the last row instead (not seen in the
            // equality tests).
            let f = if adr >= 0 {
                force.add(adr as usize).read()
            } else {
                0.0
            };
            ([g0.max(0) as usize, g1.max(0) as usize], f)
        })
    }
    /// `time`.
    pub fn time(&self) -> f64 {
        // SAFETY: mjData.time is an mjtNum.
        unsafe { field(self.ptr, dof::time) }
    }

    data_array!(
        /// `qpos` (nq).
        qpos, qpos_mut, qpos, Model::nq
    );
    data_array!(
        /// `qvel` (nv).
        qvel, qvel_mut, qvel, Model::nv
    );
    data_array!(
        /// `ctrl` (nu).
        ctrl, ctrl_mut, ctrl, Model::nu
    );
    data_array!(
        /// `mocap_pos` (nmocap x 3).
        mocap_pos, mocap_pos_mut, mocap_pos, |m: &Model| 3 * m.nmocap()
    );
    data_array!(
        /// `mocap_quat` (nmocap x 4).
        mocap_quat, mocap_quat_mut, mocap_quat, |m: &Model| 4 * m.nmocap()
    );
    data_array!(
        /// `xpos`: body positions (nbody x 3).
        xpos, xpos_mut, xpos, |m: &Model| 3 * m.nbody()
    );
    data_array!(
        /// `xquat`: body orientations (nbody x 4).
        xquat, xquat_mut, xquat, |m: &Model| 4 * m.nbody()
    );
    data_array!(
        /// `xmat`: body orientations as row-major 3x3 matrices (nbody x 9).
        xmat, xmat_mut, xmat, |m: &Model| 9 * m.nbody()
    );
    data_array!(
        /// `site_xpos` (nsite x 3).
        site_xpos, site_xpos_mut, site_xpos, |m: &Model| 3 * m.nsite()
    );
    data_array!(
        /// `site_xmat` (nsite x 9).
        site_xmat, site_xmat_mut, site_xmat, |m: &Model| 9 * m.nsite()
    );
    data_array!(
        /// `geom_xpos`: geom positions (ngeom x 3).
        geom_xpos, geom_xpos_mut, geom_xpos, |m: &Model| 3 * m.ngeom()
    );
    data_array!(
        /// `geom_xmat`: geom orientations as row-major 3x3 matrices (ngeom x 9).
        geom_xmat, geom_xmat_mut, geom_xmat, |m: &Model| 9 * m.ngeom()
    );
    data_array!(
        /// `cfrc_ext`: external contact forces per body (nbody x 6).
        cfrc_ext, cfrc_ext_mut, cfrc_ext, |m: &Model| 6 * m.nbody()
    );
}
