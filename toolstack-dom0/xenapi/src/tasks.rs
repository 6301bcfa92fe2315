//! Tasks: `Async.<Class>.<msg>` creates a task in `pending` and queues the
//! call; the board runs queued calls with [`Engine::run_jobs`] after sending
//! the reply, so a client can poll status/progress/result/error_info and
//! `task.cancel` a task that has not run yet. Finished tasks beyond
//! `max_tasks` are destroyed oldest first.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::engine::{Engine, Job, Outcome};
use crate::error::{
    ApiError, HANDLE_INVALID, LIMIT_REACHED, OPERATION_NOT_ALLOWED, TASK_CANCELLED,
};
use crate::hypervisor::Hypervisor;
use crate::rng::Entropy;
use crate::schema::{class, class_id, ClassId};
use crate::value::{format_datetime, Instant, Value};
use crate::wal::Storage;
use crate::xmlrpc;

fn task_class() -> ClassId {
    class_id("task").expect("schema has task")
}

impl<H: Hypervisor, S: Storage, E: Entropy> Engine<H, S, E> {
    fn new_task(&mut self, label: &str, description: &str) -> Result<String, ApiError> {
        let tc = task_class();
        self.gc_tasks();
        if self.db.count(tc) >= self.config.max_tasks {
            return Err(ApiError::new(LIMIT_REACHED, &["task"]));
        }
        let cd = class(tc);
        let mut rec = cd.default_record();
        rec[cd.field("uuid")] = Value::String(self.uuid());
        rec[cd.field("name_label")] = Value::str(label);
        rec[cd.field("name_description")] = Value::str(description);
        rec[cd.field("created")] = Value::DateTime(format_datetime(self.now));
        rec[cd.field("status")] = Value::str("pending");
        rec[cd.field("resident_on")] = Value::String(self.host_ref());
        rec[cd.field("progress")] = Value::Float(0.0);
        rec[cd.field("allowed_operations")] = Value::Array(alloc::vec![Value::str("cancel")]);
        let r = self.new_ref();
        self.db.put(tc, &r, rec);
        Ok(r)
    }

    fn gc_tasks(&mut self) {
        let tc = task_class();
        let cd = class(tc);
        let (st, created) = (cd.field("status"), cd.field("created"));
        while self.db.count(tc) >= self.config.max_tasks {
            let oldest = self
                .db
                .table(tc)
                .objects
                .iter()
                .filter(|(_, r)| r[st].as_str() != Some("pending"))
                .min_by(|a, b| a.1[created].as_str().cmp(&b.1[created].as_str()))
                .map(|(r, _)| r.clone());
            match oldest {
                Some(r) => {
                    self.db.delete(tc, &r);
                }
                None => break,
            }
        }
    }

    /// `task.create(label, description)`.
    pub(crate) fn task_create(
        &mut self,
        label: &str,
        description: &str,
    ) -> Result<Value, ApiError> {
        self.new_task(label, description).map(Value::String)
    }

    /// Creates the task for an `Async.*` call and queues the call.
    pub(crate) fn queue_job(
        &mut self,
        method: &str,
        c: ClassId,
        message: &'static str,
        args: Vec<Value>,
    ) -> Result<Value, ApiError> {
        let task = self.new_task(method, "")?;
        self.jobs.push_back(Job {
            task: task.clone(),
            class: c,
            message,
            args,
            started: self.now,
        });
        Ok(Value::String(task))
    }

    /// Ends `task` with `result` (its progress 1).
    pub(crate) fn finish_task(&mut self, task: &str, result: Result<Value, ApiError>) {
        self.finish(task, result);
    }

    fn finish(&mut self, task: &str, result: Result<Value, ApiError>) {
        let tc = task_class();
        let cd = class(tc);
        let Some(mut rec) = self.db.get(tc, task).cloned() else {
            return;
        };
        rec[cd.field("finished")] = Value::DateTime(format_datetime(self.now));
        rec[cd.field("progress")] = Value::Float(1.0);
        rec[cd.field("allowed_operations")] = Value::Array(Vec::new());
        match result {
            Ok(v) => {
                rec[cd.field("status")] = Value::str("success");
                let mut s = String::new();
                if v != Value::str("") {
                    xmlrpc::encode_value(&mut s, &v);
                }
                rec[cd.field("result")] = Value::String(s);
            }
            Err(e) => {
                rec[cd.field("status")] = Value::str(if e.code == TASK_CANCELLED {
                    "cancelled"
                } else {
                    "failure"
                });
                rec[cd.field("error_info")] =
                    Value::Array(e.description().into_iter().map(Value::String).collect());
            }
        }
        self.db.put(tc, task, rec);
    }

    /// Runs every queued `Async.*` call, and again every parked one,
    /// committing each that answers (its task ends). A call that parks (a
    /// clean shutdown waiting for its guest) keeps its task pending and is
    /// run again by the next call, with the instant it first came.
    /// Returns how many answered.
    pub fn run_jobs(&mut self, now: Instant) -> usize {
        let mut n = self.run_parked_jobs(now);
        loop {
            if let Some(b) = &self.building {
                // Carried on by its parked job; a sync call's build is
                // its connection's to carry on.
                if !self.parked_jobs.iter().any(|j| j.task == b.call) {
                    break;
                }
                n += self.run_parked_jobs(now);
                continue;
            }
            if self.jobs.is_empty() {
                break;
            }
            n += usize::from(self.run_next_job(now));
        }
        n
    }

    /// Runs every parked `Async.*` call again (each is a cheap check of
    /// the change it waits for); returns how many answered.
    pub fn run_parked_jobs(&mut self, now: Instant) -> usize {
        self.now = now;
        let parked = core::mem::take(&mut self.parked_jobs);
        parked
            .into_iter()
            .fold(0, |n, job| n + usize::from(self.run_job(job)))
    }

    /// Runs the oldest queued `Async.*` call, if any; returns whether it
    /// answered. dom0 runs one at a time between its relays' messages: a
    /// call such as `VM.start` builds a whole domain, and 50 queued at once
    /// must not hold every other client's call (and the replies that name
    /// their tasks) until the last is built.
    pub fn run_next_job(&mut self, now: Instant) -> bool {
        self.now = now;
        // A domain build in progress goes first, a step at a time (its
        // start parked; a sync one is stepped where its connection is
        // served): the next queued start would only wait behind it.
        if self.building.is_some() {
            self.drop_stale_build();
            return self.run_parked_jobs(now) > 0;
        }
        match self.jobs.pop_front() {
            Some(job) => self.run_job(job),
            None => false,
        }
    }

    fn run_job(&mut self, job: Job) -> bool {
        // A cancelled or collected task's job ends with it.
        if self.db.get(task_class(), &job.task).is_none() {
            return false;
        }
        self.job_task = Some(job.task.clone());
        let outcome = self.exec(job.started, "", job.class, job.message, job.args.clone());
        self.job_task = None;
        let r = match outcome {
            Outcome::Done(r) => r,
            Outcome::Stream(read) => Ok(read.to_value(&self.db)),
            Outcome::Park(_) => {
                let _ = self.commit();
                self.parked_jobs.push_back(job);
                return false;
            }
        };
        self.finish(&job.task, r);
        let _ = self.commit();
        true
    }

    /// Ends every pending task that has no queued job (after a restart).
    pub(crate) fn fail_orphaned_tasks(&mut self) {
        let tc = task_class();
        let st = class(tc).field("status");
        let orphans: Vec<String> = self
            .db
            .table(tc)
            .objects
            .iter()
            .filter(|(r, rec)| {
                rec[st].as_str() == Some("pending") && !self.jobs.iter().any(|j| &j.task == *r)
            })
            .map(|(r, _)| r.clone())
            .collect();
        for t in orphans {
            self.finish(
                &t,
                Err(ApiError::new(
                    crate::error::INTERNAL_ERROR,
                    &["toolstack restarted"],
                )),
            );
        }
    }

    /// `task.cancel`: a pending task is dropped from the queue and marked
    /// cancelled; a finished one cannot be cancelled.
    pub(crate) fn task_cancel(&mut self, task: &str) -> Result<Value, ApiError> {
        let tc = task_class();
        let status = self
            .db
            .field(tc, task, "status")
            .cloned()
            .ok_or_else(|| ApiError::new(HANDLE_INVALID, &["task", task]))?;
        if status.as_str() != Some("pending") {
            return Err(ApiError::new(
                OPERATION_NOT_ALLOWED,
                &["task has already completed"],
            ));
        }
        self.jobs.retain(|j| j.task != task);
        // A parked call ends with its task; a clean shutdown it asked for
        // stops being waited on (the guest may still act on it); a start
        // whose domain is being built gives the build up.
        if let Some(i) = self.parked_jobs.iter().position(|j| j.task == task) {
            if let Some(job) = self.parked_jobs.remove(i) {
                self.give_up_build_of(&job.task);
                if let Some(vm) = job.args.first().and_then(Value::as_str) {
                    if self
                        .clean_requests
                        .get(vm)
                        .is_some_and(|r| r.since == job.started)
                    {
                        self.clean_requests.remove(vm);
                    }
                }
            }
        }
        let task = task.to_string();
        self.finish(&task, Err(ApiError::new(TASK_CANCELLED, &[&task])));
        Ok(Value::str(""))
    }
}
