//! The page's handle on the annotation worker: spawns it, queues the request until the worker
//! reports ready, forwards replies (a reply with bytes, such as [`Reply::H5ad`], arrives as
//! `[JSON, Uint8Array]`), and turns a crash (a wasm trap ends the worker's instance) into a
//! [`Reply::Failed`] so the page always leaves the running state.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{Reply, Request};

/// A running worker. Dropping it terminates the worker (and any run in progress).
pub struct WorkerHandle {
    worker: Worker,
    pending: Rc<RefCell<Option<js_sys::Array>>>,
    ready: Rc<Cell<bool>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerHandle {
    /// Starts `worker.js` (beside the page) and routes its replies, with their bytes if any, to
    /// `on_reply`.
    pub fn spawn(
        on_reply: impl Fn(Reply, Option<js_sys::Uint8Array>) + 'static,
    ) -> Result<Self, String> {
        let opts = WorkerOptions::new();
        opts.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("./worker.js", &opts)
            .map_err(|e| format!("cannot start the annotation worker: {e:?}"))?;
        let pending: Rc<RefCell<Option<js_sys::Array>>> = Rc::default();
        let ready: Rc<Cell<bool>> = Rc::default();
        let on_reply = Rc::new(on_reply);
        let (w, p, r, rd) = (
            worker.clone(),
            pending.clone(),
            on_reply.clone(),
            ready.clone(),
        );
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let (text, bytes) = match data.dyn_ref::<js_sys::Array>() {
                Some(parts) => (
                    parts.get(0).as_string().unwrap_or_default(),
                    parts.get(1).dyn_into::<js_sys::Uint8Array>().ok(),
                ),
                None => (data.as_string().unwrap_or_default(), None),
            };
            match serde_json::from_str::<Reply>(&text) {
                Ok(Reply::Ready) => {
                    rd.set(true);
                    if let Some(msg) = p.borrow_mut().take() {
                        post(&w, &msg);
                    }
                }
                Ok(reply) => r(reply, bytes),
                Err(e) => r(
                    Reply::Failed {
                        message: format!("internal error: unreadable worker reply: {e}"),
                    },
                    None,
                ),
            }
        });
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |e: ErrorEvent| {
            e.prevent_default();
            on_reply(
                Reply::Failed {
                    message: format!(
                        "the annotation worker stopped: {}. Try again; if it keeps failing, the \
                         file or model may be too large for the browser",
                        e.message()
                    ),
                },
                None,
            );
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            pending,
            ready,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Sends a request; `parts` are the byte arrays (or the `File`) its docs list (see
    /// [`Request`]).
    pub fn run(&self, req: &Request, parts: Vec<JsValue>) {
        let msg = js_sys::Array::new();
        msg.push(&JsValue::from_str(
            &serde_json::to_string(req).expect("requests serialise"),
        ));
        for p in parts {
            msg.push(&p);
        }
        if self.ready.get() {
            post(&self.worker, &msg);
        } else {
            // Sent once the worker reports ready (its wasm loads asynchronously).
            *self.pending.borrow_mut() = Some(msg);
        }
    }
}

fn post(worker: &Worker, msg: &js_sys::Array) {
    // The buffers are copied, not transferred: the page keeps the model bytes for the next run.
    // A `File` is passed as a handle: the worker reads it slice by slice.
    let _ = worker.post_message(msg);
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
