//! The C interface exercised from Rust, the way C calls it: handlers are `extern "C"`
//! functions, handles are raw pointers, every status is checked. (The C and C++ suites in
//! tests/c and tests/cpp, run by scripts/test-c, cover the rest.)

use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

fn last_message() -> String {
    // SAFETY: the thread's NUL-terminated message, read before any other Knit call.
    unsafe { CStr::from_ptr(knit_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Answers "echo: " and the payload.
unsafe extern "C" fn echo(
    _ud: *mut c_void,
    request: *const KnitRequest,
    reply: *mut KnitReply,
) -> KnitStatus {
    // SAFETY: the request the library passed, valid during the call.
    let req = unsafe { &*request };
    // SAFETY: as above; NULL only with length 0.
    let payload =
        unsafe { crate::args::bytes(req.payload, req.payload_len, "payload") }.unwrap_or_default();
    let mut out = b"echo: ".to_vec();
    out.extend_from_slice(payload);
    // SAFETY: a live buffer and the reply of this call.
    unsafe { knit_reply_set(reply, out.as_ptr(), out.len(), KNIT_CONTENT_UTF8) }
}

/// Fails with application code 4321 and a message.
unsafe extern "C" fn fail(
    _ud: *mut c_void,
    _request: *const KnitRequest,
    reply: *mut KnitReply,
) -> KnitStatus {
    // SAFETY: the reply of this call and a static string.
    unsafe { knit_reply_error(reply, 4321, c"failed on purpose".as_ptr()) };
    4321
}

/// `echo` after 50 µs: keeps calls outstanding while a test registers for them.
unsafe extern "C" fn slow_echo(
    ud: *mut c_void,
    request: *const KnitRequest,
    reply: *mut KnitReply,
) -> KnitStatus {
    std::thread::sleep(std::time::Duration::from_micros(50));
    // SAFETY: the arguments the library passed, forwarded within the same call.
    unsafe { echo(ud, request, reply) }
}

static FREED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_free(_ud: *mut c_void) {
    FREED.fetch_add(1, Ordering::SeqCst);
}

/// A thread pool of one worker serving `echo` and `fail`.
fn pool() -> *mut KnitPool {
    let mut handlers = null_mut();
    let mut config = null_mut();
    let mut pool = null_mut();
    // SAFETY: every pointer is a live local or a static string.
    unsafe {
        assert_eq!(knit_handlers_new(&mut handlers), KNIT_OK);
        assert_eq!(
            knit_handlers_add(handlers, c"echo".as_ptr(), Some(echo), null_mut(), None),
            KNIT_OK
        );
        assert_eq!(
            knit_handlers_add(handlers, c"fail".as_ptr(), Some(fail), null_mut(), None),
            KNIT_OK
        );
        assert_eq!(
            knit_handlers_add(
                handlers,
                c"slow_echo".as_ptr(),
                Some(slow_echo),
                null_mut(),
                None
            ),
            KNIT_OK
        );
        assert_eq!(knit_config_new(&mut config), KNIT_OK);
        assert_eq!(knit_config_set_threads(config, handlers), KNIT_OK);
        assert_eq!(
            knit_pool_start(config, &mut pool),
            KNIT_OK,
            "{}",
            last_message()
        );
        assert_eq!(knit_config_free(config), KNIT_OK);
        assert_eq!(knit_handlers_free(handlers), KNIT_OK);
    }
    pool
}

/// The bytes of a response, which is freed.
fn take(response: *mut KnitResponse) -> Vec<u8> {
    let (mut data, mut len) = (null(), 0usize);
    // SAFETY: live locals; the response is a live handle.
    let status = unsafe { knit_response_get(response, &mut data, &mut len, null_mut()) };
    assert_eq!(status, KNIT_OK);
    // SAFETY: `len` bytes at `data`, owned by the response until it is freed below.
    let bytes = unsafe { crate::args::bytes(data, len, "data") }
        .unwrap_or_default()
        .to_vec();
    assert_eq!(knit_response_free(response), KNIT_OK);
    bytes
}

#[test]
fn blocking_calls_return_results_and_failures() {
    let pool = pool();
    let mut response = null_mut();
    // SAFETY: live handles and buffers.
    let status = unsafe {
        knit_call(
            pool,
            c"echo".as_ptr(),
            b"hi".as_ptr(),
            2,
            KNIT_CONTENT_UTF8,
            0,
            &mut response,
        )
    };
    assert_eq!(status, KNIT_OK, "{}", last_message());
    assert_eq!(take(response), b"echo: hi");

    // SAFETY: as above.
    let status = unsafe { knit_call(pool, c"fail".as_ptr(), null(), 0, 0, 0, &mut response) };
    assert_eq!(status, 4321);
    assert!(response.is_null());
    assert!(
        last_message().contains("failed on purpose"),
        "{}",
        last_message()
    );

    // SAFETY: as above.
    let status = unsafe { knit_call(pool, c"nope".as_ptr(), null(), 0, 0, 0, &mut response) };
    assert_eq!(status, KNIT_UNKNOWN_FUNCTION);

    assert_eq!(knit_pool_free(pool), KNIT_OK);
    // SAFETY: a dead handle is refused, never dereferenced.
    let status = unsafe { knit_call(pool, c"echo".as_ptr(), null(), 0, 0, 0, &mut response) };
    assert_eq!(status, KNIT_INVALID_ARGUMENT);
    assert_eq!(knit_pool_free(pool), KNIT_INVALID_ARGUMENT);
}

#[test]
fn tickets_wait_any_and_cancel() {
    let pool = pool();
    let mut tickets = [null_mut(); 3];
    for t in &mut tickets {
        // SAFETY: live handles and buffers.
        let status = unsafe { knit_call_async(pool, c"echo".as_ptr(), b"x".as_ptr(), 1, 0, 0, t) };
        assert_eq!(status, KNIT_OK);
    }
    let handles: Vec<*const KnitTicket> = tickets.iter().map(|t| t.cast_const()).collect();
    let mut seen = [false; 3];
    for _ in 0..3 {
        let mut index = usize::MAX;
        // SAFETY: three live ticket handles and a live index.
        let status = unsafe { knit_wait_any(handles.as_ptr(), 3, 10_000_000_000, &mut index) };
        assert_eq!(status, KNIT_OK, "{}", last_message());
        let mut response = null_mut();
        // SAFETY: a live ticket and a live output.
        let status = unsafe { knit_ticket_wait(handles[index], 0, &mut response) };
        assert_eq!(status, KNIT_OK);
        assert_eq!(take(response), b"echo: x");
        seen[index] = true;
    }
    assert_eq!(seen, [true; 3]);
    for t in tickets {
        assert_eq!(
            knit_ticket_cancel(t),
            KNIT_OK,
            "cancel after the outcome is harmless"
        );
        assert_eq!(knit_ticket_free(t), KNIT_OK);
    }
    assert_eq!(knit_pool_free(pool), KNIT_OK);
}

/// Counts the ready callbacks of each ticket of the readiness test (user data: its index).
static READY: [AtomicUsize; 600] = [const { AtomicUsize::new(0) }; 600];

unsafe extern "C" fn on_ready(user_data: *mut c_void) {
    READY[user_data as usize].fetch_add(1, Ordering::SeqCst);
}

#[test]
fn every_watched_ticket_is_ready_exactly_once_however_the_races_fall() {
    // Registration before, during and after completion, with a thread waiting on the same
    // tickets meanwhile (its waits and the watcher must not steal each other's wake-ups), and
    // tickets freed while running: each callback runs once, each outcome is there when it does.
    let pool = pool();
    let n = READY.len();
    let tickets: Vec<usize> = (0..n)
        .map(|_| {
            let mut t = null_mut();
            // SAFETY: live handles and buffers.
            let status = unsafe {
                knit_call_async(pool, c"slow_echo".as_ptr(), b"r".as_ptr(), 1, 0, 0, &mut t)
            };
            assert_eq!(status, KNIT_OK);
            t as usize
        })
        .collect();
    std::thread::scope(|s| {
        // A waiter takes the outcome of every third ticket itself.
        s.spawn(|| {
            for &t in tickets.iter().step_by(3) {
                let t = t as *const KnitTicket;
                // SAFETY: a live ticket; no response wanted.
                let status = unsafe { knit_ticket_wait(t, KNIT_FOREVER, null_mut()) };
                assert_eq!(status, KNIT_OK);
            }
        });
        for (i, &t) in tickets.iter().enumerate() {
            if i % 7 == 0 {
                std::thread::yield_now();
            }
            // SAFETY: a live ticket; the user data is an index, never dereferenced.
            let status = unsafe {
                knit_ticket_on_complete(t as *const KnitTicket, Some(on_ready), i as *mut c_void)
            };
            assert_eq!(status, KNIT_OK, "{}", last_message());
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while READY.iter().any(|r| r.load(Ordering::SeqCst) == 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "a ready callback never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for (i, &t) in tickets.iter().enumerate() {
        let t = t as *mut KnitTicket;
        if i % 3 != 0 {
            let mut response = null_mut();
            // SAFETY: a live ticket and a live output.
            let status = unsafe { knit_ticket_wait(t, 0, &mut response) };
            assert_eq!(status, KNIT_OK, "ticket {i}");
            assert_eq!(take(response), b"echo: r");
        }
        assert_eq!(knit_ticket_free(t), KNIT_OK);
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    for (i, r) in READY.iter().enumerate() {
        assert_eq!(r.load(Ordering::SeqCst), 1, "ticket {i}: exactly once");
    }
    assert_eq!(knit_pool_free(pool), KNIT_OK);
}

static CALLBACKS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_done(user_data: *mut c_void, outcome: *const KnitOutcome) {
    // SAFETY: the outcome is valid during the callback.
    let o = unsafe { &*outcome };
    // The user data is the status the test expects.
    assert_eq!(o.status, user_data as usize as u32);
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn callbacks_run_once_even_when_the_pool_is_freed_first() {
    let pool = pool();
    // SAFETY: live handles; the user data is a number, never dereferenced.
    unsafe {
        let ok = KNIT_OK as usize as *mut c_void;
        let unknown = KNIT_UNKNOWN_FUNCTION as usize as *mut c_void;
        assert_eq!(
            knit_call_callback(pool, c"echo".as_ptr(), null(), 0, 0, 0, Some(on_done), ok),
            KNIT_OK
        );
        assert_eq!(
            knit_call_callback(
                pool,
                c"nope".as_ptr(),
                null(),
                0,
                0,
                0,
                Some(on_done),
                unknown
            ),
            KNIT_OK
        );
        assert_eq!(
            knit_call_callback(pool, c"echo".as_ptr(), null(), 0, 0, 0, None, null_mut()),
            KNIT_INVALID_ARGUMENT
        );
    }
    // Freeing the pool delivers every pending callback before it returns. (The first one may
    // also have finished before the free.)
    assert_eq!(knit_pool_free(pool), KNIT_OK);
    assert_eq!(CALLBACKS.load(Ordering::SeqCst), 2);
}

#[test]
fn handler_user_data_is_freed_once_when_the_last_user_goes() {
    let before = FREED.load(Ordering::SeqCst);
    let mut handlers = null_mut();
    let mut worker = null_mut();
    // SAFETY: live locals and static strings.
    unsafe {
        assert_eq!(knit_handlers_new(&mut handlers), KNIT_OK);
        let name = c"echo".as_ptr();
        assert_eq!(
            knit_handlers_add(handlers, name, Some(echo), null_mut(), Some(count_free)),
            KNIT_OK
        );
        let region = c"knit-00000000000000000000000000000000".as_ptr();
        assert_eq!(knit_worker_new(region, 1, &mut worker), KNIT_OK);
    }
    assert_eq!(knit_worker_add_handlers(worker, handlers), KNIT_OK);
    assert_eq!(knit_handlers_free(handlers), KNIT_OK);
    assert_eq!(
        FREED.load(Ordering::SeqCst),
        before,
        "the worker still holds the handler"
    );
    assert_eq!(knit_worker_free(worker), KNIT_OK);
    assert_eq!(FREED.load(Ordering::SeqCst), before + 1);
}

#[test]
fn handler_only_functions_refuse_outside_a_handler() {
    let mut cancelled = false;
    let request = KnitRequest {
        payload: null(),
        payload_len: 0,
        content_type: 0,
        worker_slot: 1,
        request_id: 1,
        deadline_ns: 0,
    };
    // SAFETY: live locals; the forged reply is compared, never dereferenced.
    unsafe {
        assert_eq!(
            knit_request_is_cancelled(&request, &mut cancelled),
            KNIT_INVALID_ARGUMENT
        );
        let forged = std::ptr::from_ref(&request).cast_mut().cast::<KnitReply>();
        assert_eq!(knit_reply_set(forged, null(), 0, 0), KNIT_INVALID_ARGUMENT);
        let mut sender = null_mut();
        assert_eq!(
            knit_request_open_channel(&request, &mut sender),
            KNIT_INVALID_ARGUMENT
        );
        assert!(sender.is_null());
    }
    assert_eq!(knit_sender_close(null_mut()), KNIT_INVALID_ARGUMENT);
    assert_eq!(knit_receiver_free(null_mut()), KNIT_INVALID_ARGUMENT);
}

/// A pool that starts no workers (`knit_config_set_external`) adopts one that attaches by the
/// region's name and its index; pinned calls, the function list, release and a new epoch.
fn external_pool() -> (*mut KnitPool, String) {
    let mut config = null_mut();
    let mut pool = null_mut();
    // SAFETY: live locals.
    unsafe {
        assert_eq!(knit_config_new(&mut config), KNIT_OK);
        assert_eq!(knit_config_set_external(config, true), KNIT_OK);
        assert_eq!(
            knit_pool_start(config, &mut pool),
            KNIT_OK,
            "{}",
            last_message()
        );
        assert_eq!(knit_config_free(config), KNIT_OK);
    }
    let mut info = KnitRegionInfo {
        struct_size: u32::try_from(std::mem::size_of::<KnitRegionInfo>()).unwrap_or(0),
        // SAFETY: a plain C struct of integers and a char array: all zeros is a valid value.
        ..unsafe { std::mem::zeroed() }
    };
    // SAFETY: a live handle and a sized struct.
    assert_eq!(unsafe { knit_pool_get_info(pool, &mut info) }, KNIT_OK);
    // SAFETY: the library NUL-terminates the name.
    let name = unsafe { CStr::from_ptr(info.name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    (pool, name)
}

#[test]
fn an_external_pool_adopts_a_worker_it_did_not_start() {
    let (pool, name) = external_pool();
    // Nobody attached yet: no HELLO, and no function list.
    assert_eq!(knit_pool_wait_worker(pool, 1, 0), KNIT_TIMED_OUT);
    let mut length = 0usize;
    // SAFETY: capacity 0 with a NULL buffer asks for the size only.
    let status = unsafe { knit_pool_worker_functions(pool, 1, null_mut(), 0, &mut length) };
    assert_eq!(status, KNIT_TIMED_OUT);
    assert_eq!(knit_pool_wait_worker(pool, 2, 0), KNIT_INVALID_ARGUMENT);

    let worker = knit_rt::Worker::new(name, 1)
        .handle("echo", |_ctx, req| Ok(req.payload.to_vec()))
        .handle("hi", |_ctx, _req| Ok(b"hi".to_vec()));
    let served = std::thread::spawn(move || worker.serve());
    assert_eq!(
        knit_pool_wait_worker(pool, 1, KNIT_FOREVER),
        KNIT_OK,
        "{}",
        last_message()
    );
    // SAFETY: as above.
    let status = unsafe { knit_pool_worker_functions(pool, 1, null_mut(), 0, &mut length) };
    assert_eq!(status, KNIT_OK);
    assert_eq!(length, b"echo\0hi\0".len());
    let mut names = vec![0 as std::ffi::c_char; length];
    // SAFETY: `length` writable bytes.
    let status =
        unsafe { knit_pool_worker_functions(pool, 1, names.as_mut_ptr(), length, &mut length) };
    assert_eq!(status, KNIT_OK);
    let names: Vec<u8> = names.iter().map(|&c| c.to_ne_bytes()[0]).collect();
    assert_eq!(names, b"echo\0hi\0");

    let mut response = null_mut();
    // SAFETY: live handles and buffers.
    let status = unsafe {
        knit_call_on(
            pool,
            1,
            c"echo".as_ptr(),
            b"on".as_ptr(),
            2,
            0,
            0,
            &mut response,
        )
    };
    assert_eq!(status, KNIT_OK, "{}", last_message());
    assert_eq!(take(response), b"on");
    let mut ticket = null_mut();
    // SAFETY: as above.
    let status =
        unsafe { knit_call_async_on(pool, 1, c"hi".as_ptr(), null(), 0, 0, 0, &mut ticket) };
    assert_eq!(status, KNIT_OK);
    // SAFETY: a live ticket.
    let status = unsafe { knit_ticket_wait(ticket, KNIT_FOREVER, &mut response) };
    assert_eq!(status, KNIT_OK, "{}", last_message());
    assert_eq!(take(response), b"hi");
    assert_eq!(knit_ticket_free(ticket), KNIT_OK);
    // A pinned async call that cannot be sent still gives a ticket with the failure.
    // SAFETY: as above.
    let status =
        unsafe { knit_call_async_on(pool, 1, c"nope".as_ptr(), null(), 0, 0, 0, &mut ticket) };
    assert_eq!(status, KNIT_OK);
    // SAFETY: a live ticket.
    let status = unsafe { knit_ticket_wait(ticket, KNIT_FOREVER, &mut response) };
    assert_eq!(status, KNIT_UNKNOWN_FUNCTION);
    assert_eq!(knit_ticket_free(ticket), KNIT_OK);

    release_and_reserve_again(pool, served);
}

/// Releases worker 1 (which must then end its serve loop cleanly) and reserves its entry again.
fn release_and_reserve_again(
    pool: *mut KnitPool,
    served: std::thread::JoinHandle<knit_rt::Result<knit_rt::ServeOutcome>>,
) {
    let mut response = null_mut();
    let mut epoch = 0u32;
    // SAFETY: a live local.
    let status = unsafe { knit_pool_reserve_worker(pool, 1, &mut epoch) };
    assert_eq!(status, KNIT_SLOT_TAKEN, "the worker holds the entry");
    assert_eq!(
        knit_pool_release_worker(pool, 1, KNIT_FOREVER),
        KNIT_OK,
        "{}",
        last_message()
    );
    assert!(matches!(
        served.join(),
        Ok(Ok(knit_rt::ServeOutcome::Shutdown))
    ));
    // SAFETY: as above.
    let status = unsafe { knit_call_on(pool, 1, c"echo".as_ptr(), null(), 0, 0, 0, &mut response) };
    assert_eq!(status, KNIT_PEER_DIED);
    // SAFETY: a live local.
    let status = unsafe { knit_pool_reserve_worker(pool, 1, &mut epoch) };
    assert_eq!(status, KNIT_OK);
    assert_eq!(epoch, 2);
    let mut participant = KnitParticipantInfo {
        struct_size: u32::try_from(std::mem::size_of::<KnitParticipantInfo>()).unwrap_or(0),
        // SAFETY: a plain C struct: all zeros is a valid value.
        ..unsafe { std::mem::zeroed() }
    };
    // SAFETY: a live handle and a sized struct.
    let status = unsafe { knit_pool_get_participant(pool, 1, &mut participant) };
    assert_eq!(status, KNIT_OK);
    assert_eq!(
        (participant.state, participant.epoch),
        (1, 2),
        "RESERVED, epoch 2"
    );
    assert_eq!(knit_pool_free(pool), KNIT_OK);
}
