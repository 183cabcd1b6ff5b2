//! Copy-on-write view of the state used while applying one transaction or the end-of-block
//! rules. Handlers read through it and change copies; [`Overlay::finish`] hands back the
//! changed records, which are written only if the handler succeeded. A failed transaction
//! drops its overlay, so nothing it did is half-applied.

use crate::entities::{Account, Job, Program, Prover, Workflow};
use crate::events::Event;
use crate::params::ChainParams;
use crate::state::{Meta, State};
use provernet_types::{AccountId, Height, JobId, ProgramId, ProverId, WorkflowId};
use std::collections::BTreeMap;

#[derive(Debug)]
pub(crate) struct Overlay<'s> {
    base: &'s State,
    pub(crate) height: Height,
    meta: Option<Meta>,
    accounts: BTreeMap<AccountId, Account>,
    programs: BTreeMap<ProgramId, Program>,
    provers: BTreeMap<ProverId, Option<Prover>>,
    jobs: BTreeMap<JobId, Job>,
    workflows: BTreeMap<WorkflowId, Workflow>,
    pub(crate) events: Vec<Event>,
}

/// The records an overlay changed.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    meta: Option<Meta>,
    accounts: BTreeMap<AccountId, Account>,
    programs: BTreeMap<ProgramId, Program>,
    provers: BTreeMap<ProverId, Option<Prover>>,
    jobs: BTreeMap<JobId, Job>,
    workflows: BTreeMap<WorkflowId, Workflow>,
}

impl<'s> Overlay<'s> {
    pub(crate) fn new(base: &'s State, height: Height) -> Self {
        Overlay {
            base,
            height,
            meta: None,
            accounts: BTreeMap::new(),
            programs: BTreeMap::new(),
            provers: BTreeMap::new(),
            jobs: BTreeMap::new(),
            workflows: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn base(&self) -> &'s State {
        self.base
    }

    pub(crate) fn params(&self) -> &'s ChainParams {
        &self.base.meta.params
    }

    pub(crate) fn meta(&mut self) -> &mut Meta {
        self.meta.get_or_insert_with(|| self.base.meta.clone())
    }

    pub(crate) fn account(&self, id: &AccountId) -> Option<Account> {
        self.accounts.get(id).or_else(|| self.base.accounts.get(id)).copied()
    }

    /// The account, created empty if it does not exist yet.
    pub(crate) fn account_mut(&mut self, id: AccountId) -> &mut Account {
        let base = self.base;
        self.accounts
            .entry(id)
            .or_insert_with(|| base.accounts.get(&id).copied().unwrap_or_default())
    }

    pub(crate) fn program(&self, id: &ProgramId) -> Option<&Program> {
        self.programs.get(id).or_else(|| self.base.program(id))
    }

    pub(crate) fn put_program(&mut self, id: ProgramId, p: Program) {
        self.programs.insert(id, p);
    }

    pub(crate) fn prover(&self, id: &ProverId) -> Option<&Prover> {
        match self.provers.get(id) {
            Some(p) => p.as_ref(),
            None => self.base.prover(id),
        }
    }

    pub(crate) fn prover_mut(&mut self, id: &ProverId) -> Option<&mut Prover> {
        if !self.provers.contains_key(id) {
            let p = self.base.prover(id)?.clone();
            self.provers.insert(*id, Some(p));
        }
        self.provers.get_mut(id).and_then(Option::as_mut)
    }

    pub(crate) fn put_prover(&mut self, id: ProverId, p: Option<Prover>) {
        self.provers.insert(id, p);
    }

    /// A copy of the job to change and [`Overlay::put_job`] back.
    pub(crate) fn job(&self, id: &JobId) -> Option<Job> {
        self.jobs.get(id).or_else(|| self.base.job(id)).cloned()
    }

    pub(crate) fn put_job(&mut self, id: JobId, job: Job) {
        self.jobs.insert(id, job);
    }

    /// A copy of the workflow to change and [`Overlay::put_workflow`] back.
    pub(crate) fn workflow(&self, id: &WorkflowId) -> Option<Workflow> {
        self.workflows.get(id).or_else(|| self.base.workflow(id)).cloned()
    }

    pub(crate) fn put_workflow(&mut self, id: WorkflowId, w: Workflow) {
        self.workflows.insert(id, w);
    }

    /// Active provers in ascending id order, seen through the overlay: a merge of the two
    /// sorted maps, where the overlay's copy (or removal) wins.
    pub(crate) fn active_provers(&self) -> Vec<(ProverId, &Prover)> {
        let mut out = Vec::with_capacity(self.base.provers.len());
        let mut base = self.base.provers().peekable();
        let mut over = self.provers.iter().peekable();
        loop {
            let order = match (base.peek(), over.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((b, _)), Some((o, _))) => b.cmp(o),
            };
            if order == std::cmp::Ordering::Equal {
                base.next();
            }
            let take_over = order != std::cmp::Ordering::Less;
            let (id, p) = if take_over {
                match over.next() {
                    Some((id, Some(p))) => (id, p),
                    _ => continue,
                }
            } else {
                match base.next() {
                    Some(entry) => entry,
                    None => break,
                }
            };
            if p.is_active() {
                out.push((*id, p));
            }
        }
        out
    }

    pub(crate) fn finish(self) -> (Writes, Vec<Event>) {
        let writes = Writes {
            meta: self.meta,
            accounts: self.accounts,
            programs: self.programs,
            provers: self.provers,
            jobs: self.jobs,
            workflows: self.workflows,
        };
        (writes, self.events)
    }
}

impl Writes {
    pub(crate) fn apply(self, state: &mut State) {
        if let Some(meta) = self.meta {
            state.meta = meta;
            state.put_meta();
        }
        for (id, a) in self.accounts {
            state.put_account(id, a);
        }
        for (id, p) in self.programs {
            state.put_program(id, p);
        }
        for (id, p) in self.provers {
            match p {
                Some(p) => state.put_prover(id, p),
                None => state.remove_prover(&id),
            }
        }
        for (id, j) in self.jobs {
            state.put_job(id, j);
        }
        for (id, w) in self.workflows {
            state.put_workflow(id, w);
        }
    }
}
