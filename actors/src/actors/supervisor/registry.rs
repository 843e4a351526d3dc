//! The symbol registry: which Fetchers run, changed at run time by [`AddSymbol`],
//! [`RemoveSymbol`] and [`SetSymbols`] (a configuration reload), within this process's shard.

use std::collections::BTreeSet;

use actix::prelude::*;
use slog::info;

use super::{Supervisor, SupervisorError};
use crate::contract::market::Symbol;
use crate::messages::{AddSymbol, ListSymbols, RemoveSymbol, SetSymbols, Stop};

impl Supervisor {
    fn add_symbol(&mut self, symbol: Symbol, ctx: &mut Context<Self>) -> Result<(), SupervisorError> {
        if self.stopping {
            return Err(SupervisorError::ShuttingDown);
        }
        if !self.spec.produce {
            return Err(SupervisorError::NotProducing);
        }
        if !self.spec.fetch.shard.owns(&symbol) {
            return Err(SupervisorError::OtherShard(symbol.to_string(), self.spec.fetch.shard.to_string()));
        }
        if self.wanted.insert(symbol.clone()) {
            info!(self.spec.log, "Symbol added."; "symbol" => %symbol);
            if self.spec.once {
                self.completion.expect(symbol.clone());
            }
            self.start_fetcher(symbol, ctx);
        }
        Ok(())
    }

    fn remove_symbol(&mut self, symbol: &Symbol) -> Result<(), SupervisorError> {
        if !self.spec.produce {
            return Err(SupervisorError::NotProducing);
        }
        self.wanted.remove(symbol);
        self.completion.forget(symbol);
        if let Some((_, fetcher)) = self.fetchers.remove(symbol) {
            info!(self.spec.log, "Symbol removed."; "symbol" => %symbol);
            fetcher.do_send(Stop);
        }
        Ok(())
    }
}

impl Handler<AddSymbol> for Supervisor {
    type Result = Result<(), SupervisorError>;

    /// Starts a Fetcher for the symbol (no-op when it already runs).
    fn handle(&mut self, AddSymbol(symbol): AddSymbol, ctx: &mut Self::Context) -> Self::Result {
        self.add_symbol(symbol, ctx)
    }
}

impl Handler<RemoveSymbol> for Supervisor {
    type Result = Result<(), SupervisorError>;

    /// Stops and forgets the symbol's Fetcher.
    fn handle(&mut self, RemoveSymbol(symbol): RemoveSymbol, _ctx: &mut Self::Context) -> Self::Result {
        self.remove_symbol(&symbol)
    }
}

impl Handler<SetSymbols> for Supervisor {
    type Result = Result<(), SupervisorError>;

    /// Adds the new symbols of this shard and removes those no longer listed.
    fn handle(&mut self, SetSymbols(symbols): SetSymbols, ctx: &mut Self::Context) -> Self::Result {
        let shard = self.spec.fetch.shard;
        let target: BTreeSet<Symbol> = symbols.into_iter().filter(|s| shard.owns(s)).collect();
        for gone in self.wanted.difference(&target).cloned().collect::<Vec<_>>() {
            self.remove_symbol(&gone)?;
        }
        for new in target.difference(&self.wanted.clone()).cloned().collect::<Vec<_>>() {
            self.add_symbol(new, ctx)?;
        }
        Ok(())
    }
}

impl Handler<ListSymbols> for Supervisor {
    type Result = MessageResult<ListSymbols>;

    fn handle(&mut self, _: ListSymbols, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.fetchers.keys().cloned().collect())
    }
}
