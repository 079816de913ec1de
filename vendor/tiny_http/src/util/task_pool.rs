use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
///
/// PATCH(task-pool-race): 0.12.0 decided whether to start a thread from a count of waiting
/// threads that a woken thread lowered only once it ran again, so two tasks spawned in a row
/// could both be queued for the one waiting thread, and the second waited until some thread
/// finished a whole connection. The idle count now lives under the queue's lock and a task is
/// queued only while there are more idle threads than queued tasks. A thread that cannot be
/// started is logged and its task dropped (0.12.0 panicked the accept thread).
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

type Task = Box<dyn FnOnce() + Send>;

struct Sharing {
    state: Mutex<State>,
    condvar: Condvar,
}

struct State {
    todo: VecDeque<Task>,
    /// Threads waiting for a task.
    idle: usize,
    /// Threads alive.
    threads: usize,
    stopping: bool,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

/// How long a thread above the minimum waits for a task before it exits.
const IDLE_EXIT: Duration = Duration::from_millis(5000);

impl TaskPool {
    pub fn new() -> TaskPool {
        TaskPool {
            sharing: Arc::new(Sharing {
                state: Mutex::new(State {
                    todo: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    stopping: false,
                }),
                condvar: Condvar::new(),
            }),
        }
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    pub fn spawn(&self, code: Task) {
        let mut state = self.sharing.state.lock().unwrap_or_else(|p| p.into_inner());
        state.todo.push_back(code);
        if state.todo.len() <= state.idle {
            drop(state);
            self.sharing.condvar.notify_one();
            return;
        }
        state.threads += 1;
        drop(state);
        let sharing = Arc::clone(&self.sharing);
        if let Err(e) = thread::Builder::new().spawn(move || work(&sharing)) {
            log::error!("cannot start a connection thread: {}", e);
            let mut state = self.sharing.state.lock().unwrap_or_else(|p| p.into_inner());
            state.threads -= 1;
            // The task just queued has no thread to run it; dropping it closes its connection.
            if state.todo.len() > state.idle {
                state.todo.pop_back();
            }
        }
    }

    /// Threads alive now.
    #[cfg(test)]
    fn threads(&self) -> usize {
        self.sharing.state.lock().unwrap().threads
    }
}

fn work(sharing: &Sharing) {
    loop {
        let task = {
            let mut state = sharing.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(task) = state.todo.pop_front() {
                    break task;
                }
                if state.stopping {
                    state.threads -= 1;
                    return;
                }
                state.idle += 1;
                let (next, waited) = sharing
                    .condvar
                    .wait_timeout(state, IDLE_EXIT)
                    .unwrap_or_else(|p| p.into_inner());
                state = next;
                state.idle -= 1;
                if waited.timed_out() && state.todo.is_empty() && state.threads > MIN_THREADS {
                    state.threads -= 1;
                    return;
                }
            }
        };
        task();
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping = true;
        self.sharing.condvar.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::TaskPool;
    use std::sync::{mpsc, Arc, Barrier};
    use std::time::Duration;

    /// Tasks spawned in a burst, while one thread waits idle, each get a thread: every task
    /// below blocks until all of them run at once, which 0.12.0's pool could not always reach.
    #[test]
    fn a_burst_of_tasks_runs_at_once() {
        let pool = TaskPool::new();
        // One thread, then idle.
        let (tx, rx) = mpsc::channel();
        pool.spawn(Box::new(move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for _ in 0..50 {
            let n = 8;
            let barrier = Arc::new(Barrier::new(n + 1));
            for _ in 0..n {
                let barrier = Arc::clone(&barrier);
                pool.spawn(Box::new(move || {
                    barrier.wait();
                }));
            }
            let (done_tx, done_rx) = mpsc::channel();
            std::thread::spawn(move || {
                barrier.wait();
                done_tx.send(()).unwrap();
            });
            done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("every task of the burst runs at once");
        }
        assert!(pool.threads() >= 8);
    }
}
